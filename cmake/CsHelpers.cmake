# Project-wide CMake helpers.

# cs_add_test(<name> LABEL <unit|model|gui|gpu> [SOURCES ...] [LIBS ...] [ENV ...])
# Builds tests/<name>.cpp (plus SOURCES) into one Qt Test executable and registers it
# with CTest under the given label, so `ctest -L unit` etc. select what a machine can run.
function(cs_add_test name)
  cmake_parse_arguments(ARG "" "LABEL;TIMEOUT" "SOURCES;LIBS;ENV" ${ARGN})
  if(NOT ARG_LABEL)
    message(FATAL_ERROR "cs_add_test(${name}) needs a LABEL")
  endif()
  add_executable(${name} ${name}.cpp ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE Qt6::Test ${ARG_LIBS} cs_warnings)
  target_compile_definitions(${name} PRIVATE QT_NO_KEYWORDS)
  set_target_properties(${name} PROPERTIES AUTOMOC ON)
  add_test(NAME ${name} COMMAND ${name})
  # One target per label builds just those suites (CI builds `cs_tests_unit` under ASan).
  if(NOT TARGET cs_tests_${ARG_LABEL})
    add_custom_target(cs_tests_${ARG_LABEL})
  endif()
  add_dependencies(cs_tests_${ARG_LABEL} ${name})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 600)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABEL}" TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "QT_QPA_PLATFORM=offscreen;OMP_WAIT_POLICY=PASSIVE;CS_TEST_TMP=${CMAKE_CURRENT_BINARY_DIR}/tmp;${ARG_ENV}")
endfunction()
