# taskhost_add_plugin(<name> SOURCES <src>... [LINK_LIBRARIES <lib>...] [OUTPUT_DIRECTORY <dir>])
#
# Builds a taskhost task plugin: a MODULE library (loaded with dlopen, never linked against) with
# hidden visibility, so only the entry symbol is exported, and -fno-gnu-unique, so the library can
# really be unloaded (g++ otherwise marks inline statics STB_GNU_UNIQUE, which makes glibc keep the
# library loaded forever). The output is <name>.so without the "lib" prefix.
#
# Needs the target `taskhost::sdk` (defined by taskhost's own build, or by an installed taskhost).
function(taskhost_add_plugin name)
  cmake_parse_arguments(ARG "" "OUTPUT_DIRECTORY" "SOURCES;LINK_LIBRARIES;COMPILE_DEFINITIONS" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "taskhost_add_plugin(${name}): SOURCES is required")
  endif()
  add_library(${name} MODULE ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE taskhost::sdk ${ARG_LINK_LIBRARIES})
  target_compile_features(${name} PRIVATE cxx_std_20)
  target_compile_options(${name} PRIVATE -fno-gnu-unique)
  if(ARG_COMPILE_DEFINITIONS)
    target_compile_definitions(${name} PRIVATE ${ARG_COMPILE_DEFINITIONS})
  endif()
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  # Unresolved symbols are a build error, not a load-time surprise.
  if(NOT TASKHOST_SANITIZE)  # sanitizer runtimes are resolved from the host at load time
    target_link_options(${name} PRIVATE -Wl,--no-undefined)
  endif()
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}")
  elseif(DEFINED TASKHOST_PLUGIN_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${TASKHOST_PLUGIN_OUTPUT_DIRECTORY}")
  endif()
endfunction()
