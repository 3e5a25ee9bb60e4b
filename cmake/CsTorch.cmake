# Finds LibTorch >= 2: Torch_DIR (cache or environment) when given, else the one inside the
# pinned `torch` wheel in the venv made by scripts/install-deps, found through
# torch.utils.cmake_prefix_path. The wheel's LibTorch is CUDA-enabled; its CMake config needs
# the CUDA toolkit (nvcc) at configure time, taken from CUDAToolkit_ROOT, CUDA_HOME or
# /usr/local/cuda. Sets CS_TORCH_HAS_CUDA when the LibTorch found is built with CUDA.

if(NOT Torch_DIR AND DEFINED ENV{Torch_DIR})
  set(Torch_DIR "$ENV{Torch_DIR}" CACHE PATH "LibTorch's CMake config folder")
endif()

if(NOT Torch_DIR)
  set(CS_TORCH_VENV "" CACHE PATH "The venv holding the pinned torch (default: scripts/torch-venv)")
  if(NOT CS_TORCH_VENV)
    execute_process(COMMAND "${PROJECT_SOURCE_DIR}/scripts/torch-venv"
      OUTPUT_VARIABLE _cs_venv OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _cs_rc)
    if(_cs_rc EQUAL 0)
      set(CS_TORCH_VENV "${_cs_venv}" CACHE PATH "The venv holding the pinned torch" FORCE)
    endif()
  endif()
  if(NOT EXISTS "${CS_TORCH_VENV}/bin/python")
    message(FATAL_ERROR "No LibTorch: the venv ${CS_TORCH_VENV} is missing. Run scripts/install-deps, "
      "or point -DTorch_DIR=... at a LibTorch >= 2 (its share/cmake/Torch folder).")
  endif()
  execute_process(COMMAND "${CS_TORCH_VENV}/bin/python" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE _cs_prefix OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _cs_rc ERROR_QUIET)
  if(NOT _cs_rc EQUAL 0 OR NOT EXISTS "${_cs_prefix}/Torch")
    message(FATAL_ERROR "The venv ${CS_TORCH_VENV} has no usable torch; run scripts/install-deps again.")
  endif()
  set(Torch_DIR "${_cs_prefix}/Torch" CACHE PATH "LibTorch's CMake config folder" FORCE)
endif()

# The wheel's Caffe2 config enables the CUDA language; point it at the toolkit when it is not
# on PATH.
if(NOT CMAKE_CUDA_COMPILER)
  foreach(_cs_root "$ENV{CUDAToolkit_ROOT}" "$ENV{CUDA_HOME}" "/usr/local/cuda")
    if(_cs_root AND EXISTS "${_cs_root}/bin/nvcc")
      set(CMAKE_CUDA_COMPILER "${_cs_root}/bin/nvcc" CACHE FILEPATH "nvcc")
      set(CUDA_TOOLKIT_ROOT_DIR "${_cs_root}" CACHE PATH "the CUDA toolkit")
      break()
    endif()
  endforeach()
endif()

# TorchConfig looks for Caffe2 and its libraries with PATHS, which CMake searches after the
# system's folders: another LibTorch there (Debian's libtorch-dev) would be mixed in. Its own
# prefix goes first.
get_filename_component(CS_TORCH_PREFIX "${Torch_DIR}/../../.." ABSOLUTE)
if(EXISTS "${Torch_DIR}/../Caffe2/Caffe2Config.cmake")
  get_filename_component(_cs_caffe2 "${Torch_DIR}/../Caffe2" ABSOLUTE)
  set(Caffe2_DIR "${_cs_caffe2}" CACHE PATH "Caffe2's CMake config folder (beside Torch_DIR)" FORCE)
endif()
list(PREPEND CMAKE_PREFIX_PATH "${CS_TORCH_PREFIX}")
# A CUDA LibTorch's config cannot be read without nvcc: say so plainly before it fails deep inside.
if(EXISTS "${Torch_DIR}/../Caffe2/public/cuda.cmake" AND NOT CMAKE_CUDA_COMPILER)
  find_program(_cs_nvcc nvcc)
  if(NOT _cs_nvcc)
    message(FATAL_ERROR "The LibTorch in ${Torch_DIR} is built with CUDA, and its CMake config needs the CUDA "
      "toolkit's nvcc (CUDA 13 for the pinned wheel), which is not in CUDAToolkit_ROOT, CUDA_HOME, "
      "/usr/local/cuda or on PATH. Install the CUDA toolkit, or point -DTorch_DIR at a LibTorch >= 2 built "
      "without CUDA.")
  endif()
endif()
find_package(Torch 2 REQUIRED)
if(NOT TORCH_LIBRARY MATCHES "^${CS_TORCH_PREFIX}/")
  message(FATAL_ERROR "LibTorch's library ${TORCH_LIBRARY} is not under ${CS_TORCH_PREFIX} (Torch_DIR ${Torch_DIR}); "
    "remove the build folder's CMakeCache.txt and configure again")
endif()
set_package_properties(Torch PROPERTIES TYPE REQUIRED
  DESCRIPTION "LibTorch >= 2 (PyPI's torch wheel in the venv of scripts/install-deps, or Torch_DIR)")
if(TORCH_CUDA_LIBRARIES)
  set(CS_TORCH_HAS_CUDA ON)
  # Nothing of ours calls into libtorch_cuda directly: it registers the CUDA backend when it is
  # loaded. Linkers that default to --as-needed (Ubuntu's) would drop it, and CUDA would be
  # "not compiled" at run time.
  if(NOT MSVC)
    string(APPEND CMAKE_EXE_LINKER_FLAGS " -Wl,--no-as-needed")
    string(APPEND CMAKE_SHARED_LINKER_FLAGS " -Wl,--no-as-needed")
  endif()
else()
  set(CS_TORCH_HAS_CUDA OFF)
endif()
# The wheel's libtorch.so exports its own copies of some std::filesystem functions (from the
# static part of the toolchain it was built with). An executable that lists libtorch.so before
# libstdc++.so.6 binds std::filesystem::remove_all to that copy, which jumps to a null address
# here. Naming libstdc++ first on every link line puts it first in the search order.
if(NOT MSVC AND CMAKE_CXX_COMPILER_ID MATCHES "^(GNU|Clang)$") # clang (the fuzz preset) uses libstdc++ too
  string(PREPEND CMAKE_EXE_LINKER_FLAGS "-Wl,--no-as-needed -lstdc++ ")
endif()
message(STATUS "Circuitscope: LibTorch ${Torch_VERSION} from ${Torch_DIR} (CUDA: ${CS_TORCH_HAS_CUDA})")
