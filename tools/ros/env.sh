# Sourced (bash): the environment to build and run dinoseg_node and rclpy tools against ROS 2 Jazzy from PyPI
# wheels, as `make ros` sets it up (tools/ros/setup.sh):
#   source tools/ros/env.sh
#   cargo build --release --features ros --bin dinoseg_node
#   ./target/release/dinoseg_node --ros-args --params-file config/demo.yaml
#   "$DINOSEG_ROS_PYTHON" -c 'import rclpy, dinoseg_interfaces.msg'   # rclpy tools, with our messages
# Any shell, any directory; nothing here is specific to the tests. DINOSEG_ROOT overrides the repository root.
_dinoseg_here="${BASH_SOURCE[0]:-$0}"
DINOSEG_ROOT="${DINOSEG_ROOT:-$(cd "$(dirname "$_dinoseg_here")/../.." && pwd)}"
export DINOSEG_ROOT
export DINOSEG_ROS_VENV="$DINOSEG_ROOT/.rosvenv"
export DINOSEG_ROS_PREFIX="$DINOSEG_ROOT/target/ros/prefix"
_dinoseg_site="$DINOSEG_ROS_VENV/lib/python3.11/site-packages"

export ROS_DISTRO=jazzy
export ROS_VERSION=2
export ROS_PYTHON_VERSION=3
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# r2r's build script: which packages to generate bindings for, where they are, and bindgen's libclang (4).
export AMENT_PREFIX_PATH="$DINOSEG_ROS_PREFIX:$DINOSEG_ROS_VENV"
export CMAKE_PREFIX_PATH="$DINOSEG_ROS_PREFIX:$DINOSEG_ROS_VENV"
export IDL_PACKAGE_FILTER="std_msgs;sensor_msgs;geometry_msgs;diagnostic_msgs;vision_msgs;dinoseg_interfaces;rosgraph_msgs;service_msgs;type_description_interfaces"
export LIBCLANG_PATH="$_dinoseg_site/clang/native"
export BINDGEN_EXTRA_CLANG_ARGS="-I$(gcc -print-file-name=include)"
# libtorch for tch (the .venv of `make venv`), as the Makefile builds.
export LIBTORCH_USE_PYTORCH=1
# Run time: our prefix, the wheels' libraries and the libraries auditwheel vendored next to them.
_dinoseg_libs="$DINOSEG_ROS_PREFIX/lib:$DINOSEG_ROS_VENV/lib"
for _d in "$_dinoseg_site"/ros_*.libs; do [ -d "$_d" ] && _dinoseg_libs="$_dinoseg_libs:$_d"; done
export LD_LIBRARY_PATH="$_dinoseg_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# rclpy finds our generated Python message modules.
export PYTHONPATH="$DINOSEG_ROS_PREFIX/lib/python3.11/site-packages${PYTHONPATH:+:$PYTHONPATH}"
# (2) librcl pulls the *_rosidl_generator_py libraries, which need libpython's symbols: build.rs links
# dinoseg_node with this libpython (and an rpath to it) when DINOSEG_LINK_LIBPYTHON is set.
DINOSEG_LINK_LIBPYTHON="$("$DINOSEG_ROS_VENV/bin/python" -c 'import sysconfig as s; print(s.get_config_var("LIBDIR") + "/" + s.get_config_var("INSTSONAME"))' 2>/dev/null)"
export DINOSEG_LINK_LIBPYTHON
# PATH: the .venv first (tch's build runs `python3` to find torch, exactly as `make build` does, so nothing is
# rebuilt between the two), then .rosvenv (pytest, cmake). rclpy tools run with $DINOSEG_ROS_PYTHON.
export DINOSEG_ROS_PYTHON="$DINOSEG_ROS_VENV/bin/python"
export PATH="$DINOSEG_ROOT/.venv/bin:$DINOSEG_ROS_VENV/bin:$PATH"
# Tests and tools stay on this machine unless told otherwise.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
unset _dinoseg_here _dinoseg_site _dinoseg_libs _d
