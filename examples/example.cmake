# SPDX-License-Identifier: LGPL-2.1-or-later
# example.cmake: included by every example's CMakeLists.txt.  In the
# project's tree an example links the in-tree library and its tests run the
# in-tree ipcbrokerd.  Built on its own against an installed ipcbroker
#   cmake -S examples/NAME -B build -DCMAKE_PREFIX_PATH=PREFIX
# it finds the library with find_package(ipcbroker), else with pkg-config,
# and ipcbrokerd and ipcbrokerctl next to it (or in $PATH).
#   IPCB_EXAMPLE_LIB                       the library target to link
#   ipcb_example_test(NAME ARGS...)        test example_NAME: ARGS run by
#                                          run-with-broker.sh (a broker on a
#                                          private socket, $IPCBROKER_SOCKET)
set(IPCB_EXAMPLES_DIR ${CMAKE_CURRENT_LIST_DIR})
if(TARGET ipcbroker)
  set(IPCB_EXAMPLE_LIB ipcbroker)
  set(IPCB_EXAMPLE_DAEMON $<TARGET_FILE:ipcbrokerd>)
  set(IPCB_EXAMPLE_CTL $<TARGET_FILE:ipcbrokerctl>)
else()
  find_package(ipcbroker CONFIG QUIET)
  if(ipcbroker_FOUND)
    set(IPCB_EXAMPLE_LIB ipcbroker::ipcbroker)
    # PREFIX/lib/cmake/ipcbroker or PREFIX/lib/<multiarch>/cmake/ipcbroker
    set(hints ${ipcbroker_DIR}/../../../bin ${ipcbroker_DIR}/../../../../bin)
  else()
    find_package(PkgConfig REQUIRED)
    pkg_check_modules(IPCBROKER REQUIRED IMPORTED_TARGET ipcbroker)
    set(IPCB_EXAMPLE_LIB PkgConfig::IPCBROKER)
    pkg_get_variable(pc_prefix ipcbroker prefix)
    set(hints ${pc_prefix}/bin)
  endif()
  find_program(IPCB_EXAMPLE_DAEMON ipcbrokerd HINTS ${hints} PATHS /usr/sbin)
  find_program(IPCB_EXAMPLE_CTL ipcbrokerctl HINTS ${hints})
  enable_testing()
endif()

function(ipcb_example_test name)
  if(NOT IPCB_EXAMPLE_DAEMON OR NOT IPCB_EXAMPLE_CTL)
    message(STATUS "example_${name}: ipcbrokerd or ipcbrokerctl not found: no test")
    return()
  endif()
  add_test(NAME example_${name} COMMAND sh ${IPCB_EXAMPLES_DIR}/run-with-broker.sh ${ARGN})
  set_tests_properties(example_${name} PROPERTIES TIMEOUT 60
    ENVIRONMENT "IPCBROKERD=${IPCB_EXAMPLE_DAEMON};IPCBROKERCTL=${IPCB_EXAMPLE_CTL}")
endfunction()
