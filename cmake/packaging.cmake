# SPDX-License-Identifier: LGPL-2.1-or-later
# Debian packages with CPack, one per install component:
#   ipcbroker         (daemon) ipcbrokerd, ipcbrokerctl, the system and user
#                     units, docs, man pages 1, 7, 8
#   libipcbroker0     (lib)    libipcbroker.so.0
#   libipcbroker-dev  (dev)    ipcbroker.h, libipcbroker.a, the .so link,
#                              ipcbroker.pc, the CMake package, man pages 3
# Build them from a tree configured for /usr, whose units name /usr/bin:
#   cmake -S . -B build-deb -DCMAKE_INSTALL_PREFIX=/usr -DIPCB_TESTS=OFF -DIPCB_BENCH=OFF
#   cmake --build build-deb && (cd build-deb && cpack -G DEB)
# Run-time dependencies (libuv1, libsystemd0, libc6) come from dpkg-shlibdeps.
set(IPCB_PACKAGE_CONTACT "ipcbroker developers <ipcbroker@invalid>" CACHE STRING
    "Maintainer field of the Debian packages")

set(CPACK_PACKAGE_NAME ipcbroker)
set(CPACK_PACKAGE_VENDOR ipcbroker)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${IPCB_PACKAGE_CONTACT}")
# Each package's Description (summary line first) is its
# CPACK_DEBIAN_<COMPONENT>_DESCRIPTION; CPACK_PACKAGE_DESCRIPTION_SUMMARY
# stays unset, or CPack would put it in front of every one.
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL daemon lib dev)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)

set(CPACK_DEBIAN_DAEMON_PACKAGE_NAME ipcbroker)
# Added to what dpkg-shlibdeps finds: the loop relies on a behaviour of
# libuv 1.44 (daemon/mainloop.c), not on a newer symbol.
set(CPACK_DEBIAN_DAEMON_PACKAGE_DEPENDS "libuv1 (>= 1.44)")
set(CPACK_DEBIAN_DAEMON_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_DAEMON_DESCRIPTION
  "broker of named shared memory and semaphores as sealed memfds
ipcbrokerd owns named shared-memory segments and named semaphores and hands
them to clients as sealed memfds over a Unix socket. It decides who may open
what, gives read-only handles that cannot be turned writable, and cleans up
after clients that crash. This package has the daemon, the ipcbrokerctl
command-line tool and the systemd units (not enabled: systemctl enable --now
ipcbroker.socket).")

set(CPACK_DEBIAN_LIB_PACKAGE_NAME libipcbroker0)
set(CPACK_DEBIAN_LIB_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON) # a shlibs file for libipcbroker0
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
set(CPACK_DEBIAN_LIB_DESCRIPTION
  "client library for ipcbrokerd
libipcbroker connects to ipcbrokerd and gives named shared-memory segments
and named semaphores (with undo) as handles.")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libipcbroker-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_COMPONENT_DEV_DEPENDS lib)
set(CPACK_DEBIAN_DEV_DESCRIPTION
  "client library for ipcbrokerd (development files)
The header, the static library, the pkg-config file, the CMake package
and the section 3 manual pages of libipcbroker.")

# The docs every package of the project would carry go with the daemon.
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/LICENSE
              ${PROJECT_SOURCE_DIR}/CHANGELOG.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT daemon)

include(CPack)
