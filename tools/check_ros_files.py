#!/usr/bin/env python3
"""Checks the ROS packaging files without ROS: launch files, package.xml files, the interface package,
the rviz config and the structure of config/*.yaml (the full parameter check is `dinoseg check-params`).

Usage (from the repository root):
  check_ros_files.py [--root DIR]   one line per checked file, one FAIL line per problem; exit 1 on any
  check_ros_files.py --self-test    breaks copies of the files in each way of BREAKAGES, expects each reported

Where ROS 2's `launch` (and `launch_xml`) packages are importable, launch files are also loaded with them.
Needs PyYAML (in .venv: transformers, of tools/requirements.txt, depends on it).
"""

import argparse
import ast
import os
import re
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

REQUIRED_ARGS = ("params_file", "namespace", "image_topic", "use_sim_time")
INTERFACES = "ros/dinoseg_interfaces"
RVIZ_OUTPUTS = ("semantic_color", "overlay")


class Report:
    def __init__(self, root):
        self.root = root
        self.problems = []  # (relative path, message)
        self.lines = []
        self.files = 0

    def file(self, path, problems):
        rel = os.path.relpath(path, self.root)
        self.files += 1
        if problems:
            for p in problems:
                self.problems.append((rel, p))
                self.lines.append(f"FAIL  {rel}: {p}")
        else:
            self.lines.append(f"ok    {rel}")


# ---------------------------------------------------------------- launch files

def _call_name(node):
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def _str(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _kw(call, name):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _share_paths_py(tree):
    """Paths of PathJoinSubstitution([<share>, 'a', 'b']) calls, as 'a/b'."""
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and _call_name(call) == "PathJoinSubstitution" and call.args:
            parts = call.args[0]
            if isinstance(parts, (ast.List, ast.Tuple)) and len(parts.elts) > 1:
                rest = [_str(e) for e in parts.elts[1:]]
                if _str(parts.elts[0]) is None and all(rest):
                    yield "/".join(rest)


def check_launch_py(root, path):
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as e:
        return [f"Python syntax error, line {e.lineno}: {e.msg}"]
    problems = []
    if not any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body):
        problems.append("no top-level generate_launch_description()")
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    declared = set()
    for c in calls:
        if _call_name(c) == "DeclareLaunchArgument":
            name = _str(c.args[0]) if c.args else None
            declared.add(name or _str(_kw(c, "name")))
    for a in REQUIRED_ARGS:
        if a not in declared:
            problems.append(f"launch argument '{a}' is not declared (DeclareLaunchArgument)")
    if not any(_call_name(c) == "Node" and _str(_kw(c, "package")) == "dinoseg"
               and _str(_kw(c, "executable")) == "dinoseg_node" for c in calls):
        problems.append("no Node(package='dinoseg', executable='dinoseg_node')")
    for rel in _share_paths_py(tree):
        if not (root / rel).exists():
            problems.append(f"refers to share file {rel}, which is not in the repository")
    return problems + _load_with_launch(path)


def check_launch_xml(root, path):
    try:
        launch = ET.parse(path).getroot()
    except ET.ParseError as e:
        return [f"XML parse error: {e}"]
    if launch.tag != "launch":
        return [f"root element is <{launch.tag}>, not <launch>"]
    problems = []
    declared = {a.get("name") for a in launch.iter("arg")}
    for a in REQUIRED_ARGS:
        if a not in declared:
            problems.append(f"launch argument '{a}' is not declared (<arg name=...>)")
    nodes = [n for n in launch.iter("node") if n.get("pkg") == "dinoseg" and n.get("exec") == "dinoseg_node"]
    if not nodes:
        problems.append('no <node pkg="dinoseg" exec="dinoseg_node">')
    elif not any(p.get("from") for n in nodes for p in n.iter("param")):
        problems.append('the dinoseg node has no <param from="..."/> (parameters file)')
    text = path.read_text()
    for rel in re.findall(r"\$\(find-pkg-share dinoseg\)/([\w./-]+)", text):
        if not (root / rel).exists():
            problems.append(f"refers to share file {rel}, which is not in the repository")
    return problems + _load_with_launch(path)


def _load_with_launch(path):
    """Loads the file with ROS 2's launch when it is installed; nothing otherwise."""
    try:
        from launch.launch_description_sources import AnyLaunchDescriptionSource
        if path.suffix == ".xml":
            import launch_xml  # noqa: F401 - the XML front end
    except ImportError:
        return []
    try:
        AnyLaunchDescriptionSource(str(path)).try_get_launch_description_without_context()
    except Exception as e:  # noqa: BLE001 - any failure of the real loader is a finding
        return [f"ROS 2 launch cannot load it: {type(e).__name__}: {e}"]
    return []


# ---------------------------------------------------------------- packages

def _cargo_version(root):
    try:
        import tomllib
    except ImportError:
        return None
    try:
        return tomllib.loads((root / "Cargo.toml").read_text())["package"]["version"]
    except (OSError, KeyError, ValueError):
        return None


def check_package_xml(root, path, name, build_type):
    try:
        pkg = ET.parse(path).getroot()
    except ET.ParseError as e:
        return [f"XML parse error: {e}"]
    if pkg.tag != "package":
        return [f"root element is <{pkg.tag}>, not <package>"]
    problems = []
    if pkg.get("format") != "3":
        problems.append(f'format is {pkg.get("format")!r}, expected "3"')
    for tag in ("name", "version", "description", "license"):
        if not (pkg.findtext(tag) or "").strip():
            problems.append(f"<{tag}> is missing or empty")
    if pkg.find("maintainer") is None:
        problems.append("<maintainer> is missing")
    if (pkg.findtext("name") or "").strip() != name:
        problems.append(f"<name> is not {name}")
    if (pkg.findtext("export/build_type") or "").strip() != build_type:
        problems.append(f"<export><build_type> is not {build_type}")
    cargo = _cargo_version(root)
    if cargo and (pkg.findtext("version") or "").strip() != cargo:
        problems.append(f"<version> differs from Cargo.toml's {cargo}")
    deps = {d.text.strip() for t in ("depend", "build_depend") for d in pkg.iter(t) if d.text}
    if name == "dinoseg" and "dinoseg_interfaces" not in deps:
        problems.append("does not depend on dinoseg_interfaces")
    if name == "dinoseg_interfaces":
        if (pkg.findtext("member_of_group") or "").strip() != "rosidl_interface_packages":
            problems.append("not <member_of_group>rosidl_interface_packages")
        tools = {d.text.strip() for d in pkg.iter("buildtool_depend") if d.text}
        if "rosidl_default_generators" not in tools:
            problems.append("no <buildtool_depend>rosidl_default_generators")
    return problems


def check_interfaces_cmake(root, path):
    problems = []
    msgs = sorted(p.name for p in (root / "msg").glob("*.msg"))
    if not msgs:
        problems.append("the repository's msg/ holds no .msg file")
    text = path.read_text()
    listed = re.findall(r'"?(msg/\w+\.msg)"?', text)
    for m in msgs:
        if f"msg/{m}" not in listed:
            problems.append(f"msg/{m} is not in rosidl_generate_interfaces")
    link = path.parent / "msg"
    if not link.is_symlink():
        problems.append("msg is not a symlink to the repository's msg/")
    elif not link.exists() or not os.path.samefile(link, root / "msg"):
        problems.append(f"msg symlink ({os.readlink(link)}) does not resolve to the repository's msg/")
    for rel in listed:
        if not (path.parent / rel).is_file():
            problems.append(f"{rel} is listed but missing from the package")
    if "ament_package()" not in text:
        problems.append("no ament_package()")
    return problems


# ---------------------------------------------------------------- rviz, params

def check_rviz(root, path):
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        return [f"YAML error: {e}"]
    displays = ((doc or {}).get("Visualization Manager") or {}).get("Displays")
    if not isinstance(displays, list):
        return ["no 'Visualization Manager: Displays' list"]
    topics = []
    for d in displays:
        if isinstance(d, dict) and d.get("Class") == "rviz_default_plugins/Image":
            t = d.get("Topic")
            topics.append(t.get("Value") if isinstance(t, dict) else t)
    return [f"no rviz_default_plugins/Image display on a .../{o} topic" for o in RVIZ_OUTPUTS
            if not any(isinstance(t, str) and t.endswith("/" + o) for t in topics)]


def check_params_yaml(root, path):
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        return [f"YAML error: {e}"]
    if not isinstance(doc, dict) or len(doc) != 1:
        return ["expected a single top-level key (the node name)"]
    (key, body), = doc.items()
    if not isinstance(body, dict) or not isinstance(body.get("ros__parameters"), dict):
        return [f"'{key}' does not hold a 'ros__parameters' map"]
    return []


def check_fastdds_xml(root, path):
    """The Fast DDS profile the node embeds (src/bin/dinoseg_node/startup.rs): parses, and holds the settings
    README "Middleware" promises (a large shared-memory segment, a default participant and writer profile)."""
    ns = "{http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles}"
    try:
        doc = ET.parse(path).getroot()
    except ET.ParseError as e:
        return [f"XML parse error: {e}"]
    problems = []
    segs = [int(e.text) for e in doc.iter(ns + "segment_size") if (e.text or "").strip().isdigit()]
    if not segs or max(segs) < 16 << 20:
        problems.append("no SHM segment_size of at least 16 MiB")
    for kind in ("participant", "data_writer"):
        if not any(e.get("is_default_profile") == "true" for e in doc.iter(ns + kind)):
            problems.append(f"no default {kind} profile")
    if not list(doc.iter(ns + "heartbeatPeriod")):
        problems.append("no writer heartbeatPeriod")
    return problems


# ---------------------------------------------------------------- driver

def check(root):
    root = Path(root)
    r = Report(root)

    def each(pattern, fn, what):
        files = sorted(root.glob(pattern))
        if not files:
            r.file(root / pattern, [f"no {what} found"])
        for f in files:
            r.file(f, fn(root, f))

    each("launch/*.launch.py", check_launch_py, "Python launch file")
    each("launch/*.launch.xml", check_launch_xml, "XML launch file")
    for rel, name, bt in (("package.xml", "dinoseg", "ament_cargo"),
                          (f"{INTERFACES}/package.xml", "dinoseg_interfaces", "ament_cmake")):
        p = root / rel
        r.file(p, check_package_xml(root, p, name, bt) if p.is_file() else ["missing"])
    cm = root / INTERFACES / "CMakeLists.txt"
    r.file(cm, check_interfaces_cmake(root, cm) if cm.is_file() else ["missing"])
    each("rviz/*.rviz", check_rviz, "rviz config")
    each("config/*.yaml", check_params_yaml, "parameters file")
    each("config/fastdds.xml", check_fastdds_xml, "Fast DDS profile")
    return r


# Each entry: file to break, (old, new) replacement or None to append, text the report must contain.
BREAKAGES = [
    ("launch/dinoseg.launch.py", None, "syntax error"),
    ("launch/dinoseg.launch.py", ("'image_topic',", "'camera_topic',"), "'image_topic' is not declared"),
    ("launch/dinoseg.launch.xml", ('<arg name="use_sim_time"', '<arg name="sim_time"'),
     "'use_sim_time' is not declared"),
    ("launch/dinoseg.launch.xml", ("</launch>", ""), "XML parse error"),
    ("rviz/dinoseg.rviz", ("/camera/dinoseg/overlay", "/camera/image_raw"), "overlay topic"),
    ("package.xml", ("<build_type>ament_cargo", "<build_type>ament_cmake"), "build_type> is not ament_cargo"),
    (f"{INTERFACES}/CMakeLists.txt", ('"msg/InstanceMaskArray.msg"', ""), "InstanceMaskArray.msg is not in"),
    ("config/demo.yaml", ("ros__parameters:", "parameters:"), "ros__parameters"),
    ("config/fastdds.xml", ("<segment_size>67108864", "<segment_size>524288"), "segment_size"),
]


def self_test(root):
    root = Path(root)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        pristine = Path(tmp) / "pristine"
        pristine.mkdir()
        for rel in ("package.xml", "Cargo.toml", "launch", "rviz", "msg", "ros"):
            src = root / rel
            if src.is_dir():
                shutil.copytree(src, pristine / rel, symlinks=True)
            elif src.exists():
                shutil.copy2(src, pristine / rel)
        (pristine / "config").mkdir()
        for f in [*(root / "config").glob("*.yaml"), root / "config" / "fastdds.xml"]:
            shutil.copy2(f, pristine / "config" / f.name)
        base = check(pristine)
        if base.problems:
            failures.append(f"the unbroken copy has problems: {base.problems}")
        for i, (rel, edit, expect) in enumerate(BREAKAGES):
            case = Path(tmp) / f"case{i}"
            shutil.copytree(pristine, case, symlinks=True)
            target = case / rel
            text = target.read_text()
            if edit is None:
                text += "\ndef broken(:\n"
            elif edit[0] in text:
                text = text.replace(edit[0], edit[1], 1)
            else:
                failures.append(f"{rel}: the self-test's edit target {edit[0]!r} is not in the file")
                continue
            target.write_text(text)
            found = [m for f, m in check(case).problems if f == rel and expect in m]
            print(f"{'ok  ' if found else 'FAIL'}  breaking {rel}: expect '{expect}'"
                  + (f" -> {found[0]}" if found else ""))
            if not found:
                failures.append(f"{rel}: no problem containing '{expect}' reported")
    for f in failures:
        print(f"FAIL  {f}")
    print(f"self-test: {len(BREAKAGES)} breakages, {len(failures)} failures")
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=Path(__file__).resolve().parent.parent, type=Path)
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return self_test(args.root)
    r = check(args.root)
    print("\n".join(r.lines))
    print(f"{r.files} files checked, {len(r.problems)} problems")
    return 1 if r.problems else 0


if __name__ == "__main__":
    sys.exit(main())
