/* config.h: the daemon's settings, filled by main.c from the command line. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct config {
        const char *socket_path;
        uint64_t max_segment_size; /* bytes; larger creates get -EFBIG */
        unsigned max_queued_replies; /* per connection, before disconnect */
} config;

extern config cfg;
