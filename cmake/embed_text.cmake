# Writes OUT, a C++ file defining `std::string_view taskhost::FUNCTION()` that returns the bytes of
# IN. Run as `cmake -DIN=... -DOUT=... -DFUNCTION=... -P embed_text.cmake` (at build time, so an
# edit of IN rebuilds it).
file(READ "${IN}" text)
set(delim "th_embed")  # at most 16 characters
string(FIND "${text}" ")${delim}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw-string delimiter )${delim}\"")
endif()
file(WRITE "${OUT}" "// Generated from ${IN} by cmake/embed_text.cmake; do not edit.\n#include <string_view>\nnamespace taskhost {\nstd::string_view ${FUNCTION}() {\n  static constexpr std::string_view text = R\"${delim}(${text})${delim}\";\n  return text;\n}\n}  // namespace taskhost\n")
