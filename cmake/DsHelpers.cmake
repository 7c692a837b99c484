# Helpers shared by every folder's CMakeLists.txt. Folders list their sources by glob, so a new
# file needs no edit here; the naming rules below give files their special flags.

# ds_add_library(<target> [SOURCES <files...>] [EXCLUDE <files...>] [DEPS <targets...>])
#   Builds every *.cpp (and, with CUDA, every *.cu) in the calling folder into a static library;
#   SOURCES names the files instead (a folder holding two libraries), EXCLUDE leaves files out.
#   Files named *_avx512.cpp get AVX-512 flags, *_avx2.cpp AVX2+FMA flags: code in them must only
#   run after a run-time CPU check (see lib/zero/adam_cpu.cpp for the dispatch pattern).
function(ds_add_library target)
  cmake_parse_arguments(ARG "" "" "DEPS;SOURCES;EXCLUDE" ${ARGN})
  if(ARG_SOURCES)
    list(TRANSFORM ARG_SOURCES PREPEND ${CMAKE_CURRENT_SOURCE_DIR}/)
    set(cpp_sources ${ARG_SOURCES})
    list(FILTER cpp_sources INCLUDE REGEX "\\.cpp$")
    set(cu_sources ${ARG_SOURCES})
    list(FILTER cu_sources INCLUDE REGEX "\\.cu$")
  else()
    file(GLOB cpp_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
    file(GLOB cu_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cu)
  endif()
  foreach(f ${ARG_EXCLUDE})
    list(REMOVE_ITEM cpp_sources ${CMAKE_CURRENT_SOURCE_DIR}/${f})
    list(REMOVE_ITEM cu_sources ${CMAKE_CURRENT_SOURCE_DIR}/${f})
  endforeach()
  set(sources ${cpp_sources})
  if(DS_HAVE_CUDA)
    list(APPEND sources ${cu_sources})
  endif()
  if(NOT sources)  # a folder with headers only (so far)
    add_library(${target} INTERFACE)
    target_include_directories(${target} INTERFACE ${PROJECT_SOURCE_DIR}/lib)
    target_link_libraries(${target} INTERFACE ${ARG_DEPS})
    return()
  endif()
  add_library(${target} STATIC ${sources})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR}/lib)
  target_link_libraries(${target} PUBLIC ${ARG_DEPS})
  if(DS_HAVE_CUDA)
    target_compile_definitions(${target} PUBLIC DS_HAVE_CUDA=1)
  endif()
  foreach(f ${cpp_sources})
    if(f MATCHES "_avx512\\.cpp$")
      set_source_files_properties(${f} PROPERTIES COMPILE_OPTIONS "-mavx512f;-mavx512bw;-mavx512vl;-mavx512dq;-mfma;-mf16c")
    elseif(f MATCHES "_avx2\\.cpp$")
      set_source_files_properties(${f} PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c")
    endif()
  endforeach()
endfunction()

# ds_add_test_suite(<name> DEPS <libs...>)
#   One Catch2 binary test_<name> from every *.cpp in tests/<name>/; each TEST_CASE becomes a
#   CTest test (catch_discover_tests), labelled <name>; a case that calls DS_SKIP exits 77, which
#   SKIP_RETURN_CODE reports as Skipped (tests/support/skip.hpp).
function(ds_add_test_suite name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "DEPS" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${name}/*.cpp)
  if(NOT sources)
    return()
  endif()
  add_executable(test_${name} ${sources})
  target_link_libraries(test_${name} PRIVATE ds_catch_main ${ARG_DEPS})
  target_include_directories(test_${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_compile_definitions(test_${name} PRIVATE
    DS_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    DS_BINARY_DIR="${PROJECT_BINARY_DIR}")
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  catch_discover_tests(test_${name}
    TEST_PREFIX "${name}: "
    PROPERTIES LABELS ${name} TIMEOUT ${ARG_TIMEOUT} SKIP_RETURN_CODE 77
    DISCOVERY_TIMEOUT 30)
endfunction()
