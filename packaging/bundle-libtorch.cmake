# Install-time script (packaging/CMakeLists.txt, component libtorch): copies the LibTorch runtime
# the programs load into PREFIX/${CS_BUNDLE_DEST}, keeping each library's path relative to
# CS_BUNDLE_ROOT (the wheel's site-packages: torch/lib/..., nvidia/cu13/lib/...), so the RUNPATHs
# the wheel's libraries carry ($ORIGIN/../../nvidia/...) resolve inside the install.
# Inputs: CS_BUNDLE_PROGRAMS (the built programs), CS_BUNDLE_ROOT, CS_BUNDLE_TORCH_LIB,
# CS_BUNDLE_DEST.
#
# What is copied: the recursive runtime dependencies of the programs that resolve under the root,
# and of the libraries that LibTorch and cuDNN open with dlopen, which no ELF header names:
# libtorch_cuda_linalg (torch.linalg on CUDA, with cuSOLVER), libcaffe2_nvrtc and NVRTC's
# builtins (kernels compiled at run time), and cuDNN's sub-libraries. Not copied: Python's
# bindings, NVSHMEM's network transports, static archives. A library found outside the root and
# outside the system's folders is taken from the root when the wheel has one of that name (the
# toolkit's libcudart in /usr/local/cuda is the wheel's file), else the install fails naming it.

file(GLOB _seeds LIST_DIRECTORIES false
  "${CS_BUNDLE_TORCH_LIB}/libtorch_cuda_linalg.so"
  "${CS_BUNDLE_TORCH_LIB}/libcaffe2_nvrtc.so"
  "${CS_BUNDLE_ROOT}/nvidia/cudnn/lib/libcudnn*.so*"
  "${CS_BUNDLE_ROOT}/nvidia/*/lib/libnvrtc-builtins.so*")
list(FILTER _seeds EXCLUDE REGEX "\\.alt\\.so")

file(GET_RUNTIME_DEPENDENCIES
  EXECUTABLES ${CS_BUNDLE_PROGRAMS}
  LIBRARIES ${_seeds}
  RESOLVED_DEPENDENCIES_VAR _resolved
  UNRESOLVED_DEPENDENCIES_VAR _unresolved
  CONFLICTING_DEPENDENCIES_PREFIX _conflict)

# The NVIDIA driver's libcuda comes with the driver, on the user's machine; nothing else may
# be missing.
list(FILTER _unresolved EXCLUDE REGEX "^libcuda\\.so\\.1$")
if(_unresolved)
  message(FATAL_ERROR "bundle-libtorch: unresolved runtime dependencies: ${_unresolved}")
endif()

# A name found in two folders (libcudart: the wheel's and the toolkit's): the root's copy.
foreach(_name IN LISTS _conflict_FILENAMES)
  set(_pick "")
  foreach(_candidate IN LISTS _conflict_${_name})
    cmake_path(IS_PREFIX CS_BUNDLE_ROOT "${_candidate}" NORMALIZE _inside)
    if(_inside)
      set(_pick "${_candidate}")
      break()
    endif()
  endforeach()
  if(NOT _pick)
    list(GET _conflict_${_name} 0 _pick)
  endif()
  list(APPEND _resolved "${_pick}")
endforeach()
list(APPEND _resolved ${_seeds})
list(REMOVE_DUPLICATES _resolved)

set(_copied 0)
foreach(_lib IN LISTS _resolved)
  cmake_path(NORMAL_PATH _lib) # torch/lib/../../nvidia/... as nvidia/...
  get_filename_component(_name "${_lib}" NAME)
  if(_lib MATCHES "^(/usr)?/lib(64|x32)?/")
    continue() # the system's: a Debian package provides it
  endif()
  cmake_path(IS_PREFIX CS_BUNDLE_ROOT "${_lib}" NORMALIZE _inside)
  if(NOT _inside)
    file(GLOB _same LIST_DIRECTORIES false "${CS_BUNDLE_TORCH_LIB}/${_name}" "${CS_BUNDLE_ROOT}/nvidia/*/lib/${_name}")
    if(NOT _same)
      message(FATAL_ERROR "bundle-libtorch: ${_lib} is neither a system library nor part of ${CS_BUNDLE_ROOT}")
    endif()
    list(GET _same 0 _lib)
  endif()
  file(RELATIVE_PATH _rel "${CS_BUNDLE_ROOT}" "${_lib}")
  get_filename_component(_rel_dir "${_rel}" DIRECTORY)
  # The file under the name it was found by (a symlink's target is copied under the link's
  # name), mode 644 as Debian wants shared libraries.
  file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/${CS_BUNDLE_DEST}/${_rel_dir}" TYPE FILE
    FILES "${_lib}" RENAME "${_name}" PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  math(EXPR _copied "${_copied} + 1")
endforeach()
message(STATUS "bundle-libtorch: ${_copied} libraries from ${CS_BUNDLE_ROOT}")
