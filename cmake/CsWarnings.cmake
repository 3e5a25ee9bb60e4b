# cs_warnings: the compiler warnings every target of ours builds with (linked PRIVATE, so they
# apply to our sources only; LibTorch, Qt and the other imported targets' headers are system
# headers and stay quiet). CS_WERROR=ON (CI's .ci/run) makes each warning an error.
option(CS_WERROR "Treat compiler warnings as errors" OFF)
add_library(cs_warnings INTERFACE)
target_compile_options(cs_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wshadow -Wnon-virtual-dtor -Woverloaded-virtual -Wcast-align
    -Wformat=2 -Wimplicit-fallthrough -Wmisleading-indentation>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU>>:-Wduplicated-cond -Wlogical-op> # gcc's only (clang: fuzz preset)
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${CS_WERROR}>>:-Werror>)

# cs_quiet_qml_cache(<target>): Qt's qmlcachegen writes C++ for a QML module's files into the
# module's own target (.rcc/qmlcache/*.cpp); that generated code is not ours and trips
# -Wshadow, so its files build without warnings. Deferred to the end of the directory, after
# Qt has added them.
function(cs_quiet_qml_cache target)
  # A deferred call reads its arguments when it runs: the name goes in now, as text.
  cmake_language(EVAL CODE "cmake_language(DEFER CALL _cs_quiet_qml_cache_now [[${target}]])")
endfunction()
function(_cs_quiet_qml_cache_now target)
  get_target_property(_sources ${target} SOURCES)
  list(FILTER _sources INCLUDE REGEX "/\\.rcc/qmlcache/.*\\.cpp$")
  if(_sources)
    set_source_files_properties(${_sources} PROPERTIES COMPILE_OPTIONS "-w")
  endif()
endfunction()
