"""Bad params files: the node exits with code 1 before it subscribes to anything, says what is wrong (every bad
key; the file when rcl cannot read it), and never panics."""

import pytest
import yaml

from harness import demo_params, with_keys

CAM = "/camera/image_raw"
EXIT_TIMEOUT = 30.0


def watch_exit(ros, node):
    """Waits for the node to exit, checking meanwhile that no camera subscription or output publisher of it
    shows up in the graph; (exit code or None, most graph endpoints seen)."""
    seen = [0]

    def exited():
        seen[0] = max(seen[0], ros.node.count_subscribers(CAM), ros.node.count_publishers("/camera/dinoseg/semantic"))
        return not node.running()

    ros.wait_for(exited, EXIT_TIMEOUT)
    return node.proc.poll(), seen[0]


def check_no_panic(node):
    err = node.stderr()
    assert node.proc.returncode != 101, "exit code 101: a Rust panic"
    assert "panicked" not in err and "RUST_BACKTRACE" not in err, f"a panic:\n{err}"


def test_bad_values_and_unknown_keys_exit_1_naming_every_key(ros):
    bad = {"thresholds.score": 2, "outputs.bogus": True, "node.max_batch": 0, "colors.overlay_alpha": "half"}
    node = ros.start_node(with_keys(demo_params(), **bad), wait=False)
    rc, endpoints = watch_exit(ros, node)
    assert rc is not None, f"still running after {EXIT_TIMEOUT} s"
    check_no_panic(node)
    assert rc == 1, f"exit code {rc}"
    err = node.stderr()
    missing = [k for k in bad if k not in err]
    assert not missing, f"stderr does not name {missing}:\n{err}"
    assert endpoints == 0, "the node advertised its camera subscription or outputs before exiting"
    assert "(sensor_msgs/msg/Image) ->" not in node.log(), "a camera subscription was created"


def rcl_unreadable(name):
    """(params file text, words the message should have besides the file's path)."""
    base = demo_params()
    if name == "list_of_maps":
        return yaml.safe_dump({"dinoseg": {"ros__parameters": {**base, "heads": [{"type": "eomt"}]}}}), ["heads"]
    if name == "mixed_type_list":
        return yaml.safe_dump({"dinoseg": {"ros__parameters": {**base, "input": {"topics": [1, "a"]}}}}), []
    if name == "invalid_yaml":
        return "dinoseg:\n  ros__parameters:\n    device: [cpu\n    precision: fp32\n", []
    raise ValueError(name)


@pytest.mark.parametrize("name", ["list_of_maps", "mixed_type_list", "invalid_yaml"])
def test_yaml_rcl_cannot_take_exits_1_naming_the_file(ros, name):
    text, about = rcl_unreadable(name)
    node = ros.start_node(text, wait=False)
    rc, endpoints = watch_exit(ros, node)
    assert rc is not None, f"still running after {EXIT_TIMEOUT} s"
    check_no_panic(node)
    assert rc == 1, f"exit code {rc}"
    err = node.stderr()
    assert str(node.params_path) in err, f"stderr does not name {node.params_path}:\n{err}"
    for word in about:
        assert word in err, f"stderr does not mention {word}"
    assert endpoints == 0


def test_missing_params_file_exits_1_naming_it(ros):
    missing = ros.tmp / "no_such_params.yaml"
    node = ros.start_node(missing, wait=False)
    rc, _ = watch_exit(ros, node)
    assert rc is not None, f"still running after {EXIT_TIMEOUT} s"
    check_no_panic(node)
    assert rc == 1, f"exit code {rc}"
    assert str(missing) in node.stderr(), node.stderr()
