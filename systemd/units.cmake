# SPDX-License-Identifier: LGPL-2.1-or-later
# units.cmake: write the systemd units with the paths of an install prefix.
# Included twice: by systemd/CMakeLists.txt at configure time (the units in
# the build tree, for the tests) and by `cmake --install` (install(CODE)),
# where CMAKE_INSTALL_PREFIX is the prefix actually used (--prefix P), so
# that ExecStart= names the binary that was installed.

# ipcb_unit_write(SRC DST BINDIR DOCDIR): SRC with ExecStart= in BINDIR and
# Documentation= in DOCDIR (both absolute), written to DST.  The sources are
# valid units as they stand, with /usr/bin and /usr/share/doc/ipcbroker.
function(ipcb_unit_write src dst bindir docdir)
  file(READ "${src}" text)
  string(REPLACE "=/usr/bin/ipcbrokerd" "=${bindir}/ipcbrokerd" text "${text}")
  string(REPLACE "file:///usr/share/doc/ipcbroker/" "file://${docdir}/" text "${text}")
  file(WRITE "${dst}" "${text}")
endfunction()

# ipcb_units_install(SRCDIR STAGEDIR BINDIR DOCDIR SYSTEMDIR USERDIR): at
# install time.  Directories may be relative to CMAKE_INSTALL_PREFIX (as
# GNUInstallDirs gives them) or absolute; DESTDIR is honoured by file(INSTALL)
# and never written into a unit.
function(ipcb_units_install srcdir stagedir bindir docdir systemdir userdir)
  foreach(v bindir docdir systemdir userdir)
    if(NOT IS_ABSOLUTE "${${v}}")
      set(${v} "${CMAKE_INSTALL_PREFIX}/${${v}}")
    endif()
  endforeach()
  foreach(kind system user)
    if(kind STREQUAL "system")
      set(from "${srcdir}")
      set(to "${systemdir}")
    else()
      set(from "${srcdir}/user")
      set(to "${userdir}")
    endif()
    set(files)
    foreach(u ipcbroker.socket ipcbroker.service)
      ipcb_unit_write("${from}/${u}" "${stagedir}/${kind}/${u}" "${bindir}" "${docdir}")
      list(APPEND files "${stagedir}/${kind}/${u}")
    endforeach()
    file(INSTALL DESTINATION "${to}" TYPE FILE FILES ${files})
  endforeach()
  # file(INSTALL) records what it installed in this scope's variable.
  set(CMAKE_INSTALL_MANIFEST_FILES "${CMAKE_INSTALL_MANIFEST_FILES}" PARENT_SCOPE)
endfunction()
