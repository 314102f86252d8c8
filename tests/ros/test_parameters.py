"""Parameters over the ROS services under /dinoseg/ (what `ros2 param` calls): get / list return the params
file's values, describe gives descriptions and ranges, set changes live keys for the next frame and refuses
keys read at start-up and values out of range, with a reason."""

import numpy as np
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, GetParameters, ListParameters, SetParameters

from harness import demo_params, make_image, pixels, stamp_key, with_keys

CAM = "/camera/image_raw"


def params_file():
    """config/demo.yaml plus the ranged keys the tests read back."""
    return with_keys(demo_params(), **{"colors.overlay_alpha": 0.5, "node.max_batch": 1})


def to_msg(v):
    if isinstance(v, bool):
        return ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=v)
    if isinstance(v, int):
        return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=v)
    if isinstance(v, float):
        return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=v)
    if isinstance(v, str):
        return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=v)
    return ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=list(v))


def from_msg(pv):
    return {
        ParameterType.PARAMETER_NOT_SET: lambda: None,
        ParameterType.PARAMETER_BOOL: lambda: pv.bool_value,
        ParameterType.PARAMETER_INTEGER: lambda: pv.integer_value,
        ParameterType.PARAMETER_DOUBLE: lambda: pv.double_value,
        ParameterType.PARAMETER_STRING: lambda: pv.string_value,
        ParameterType.PARAMETER_STRING_ARRAY: lambda: list(pv.string_array_value),
        ParameterType.PARAMETER_INTEGER_ARRAY: lambda: list(pv.integer_array_value),
    }.get(pv.type, lambda: ("type", pv.type))()


def get(ros, *names):
    r = ros.call(GetParameters, "/dinoseg/get_parameters", GetParameters.Request(names=list(names)))
    assert len(r.values) == len(names)
    return dict(zip(names, (from_msg(v) for v in r.values)))


def set_params(ros, **values):
    """{key: SetParametersResult} for dotted keys given with `__` for `.`."""
    keys = [k.replace("__", ".") for k in values]
    req = SetParameters.Request(parameters=[Parameter(name=k, value=to_msg(v)) for k, v in zip(keys, values.values())])
    r = ros.call(SetParameters, "/dinoseg/set_parameters", req)
    assert len(r.results) == len(keys)
    return dict(zip(keys, r.results))


def frame(ros, pub, col, seed=3):
    """A 64x48 scene through the node; its stamp key."""
    sent = ros.send_until(pub, lambda: make_image("rgb8", 48, 64, seed=seed), col, ["semantic"])
    assert sent is not None, "no outputs"
    return sent, stamp_key(sent.header)


def test_get_and_list_return_the_files_values(ros):
    p = params_file()
    ros.start_node(p)
    want = {
        "thresholds.score": 0.5,
        "thresholds.query": 0.5,
        "device": "cpu",
        "precision": "fp32",
        "node.threads": 1,
        "node.max_batch": 1,
        "colors.overlay_alpha": 0.5,
        "input.topics": p["input"]["topics"],
        "outputs.overlay": True,
        "heads.scene.type": "eomt",
        "heads.scene.checkpoint": p["heads"]["scene"]["checkpoint"],
        "heads.semantic.source": "eomt",
    }
    assert get(ros, *want) == want
    r = ros.call(ListParameters, "/dinoseg/list_parameters", ListParameters.Request(prefixes=[], depth=0))
    missing = set(want) - set(r.result.names)
    assert not missing, f"list_parameters lacks {missing}"
    r = ros.call(ListParameters, "/dinoseg/list_parameters", ListParameters.Request(prefixes=["thresholds"], depth=0))
    assert {"thresholds.score", "thresholds.query"} <= set(r.result.names)
    assert all(n.startswith("thresholds.") for n in r.result.names), r.result.names


def test_describe_gives_descriptions_and_ranges(ros):
    ros.start_node(params_file())
    names = ["thresholds.score", "node.max_batch", "colors.overlay_alpha", "device", "heads.scene.checkpoint"]
    r = ros.call(DescribeParameters, "/dinoseg/describe_parameters", DescribeParameters.Request(names=names))
    d = {x.name: x for x in r.descriptors}
    assert set(d) == set(names)
    for n in names:
        assert d[n].description.strip(), f"{n}: empty description"
    assert d["thresholds.score"].type == ParameterType.PARAMETER_DOUBLE
    assert d["node.max_batch"].type == ParameterType.PARAMETER_INTEGER
    assert d["device"].type == ParameterType.PARAMETER_STRING
    for n in ("thresholds.score", "colors.overlay_alpha"):
        assert len(d[n].floating_point_range) == 1, f"{n}: no floating_point_range"
        rng = d[n].floating_point_range[0]
        assert (rng.from_value, rng.to_value) == (0.0, 1.0), n
        assert not d[n].integer_range
    assert len(d["node.max_batch"].integer_range) == 1, "node.max_batch: no integer_range"
    rng = d["node.max_batch"].integer_range[0]
    assert (rng.from_value, rng.to_value) == (1, 64)
    assert not d["device"].floating_point_range and not d["device"].integer_range


def test_live_keys_are_accepted_and_apply_to_the_next_frame(ros):
    ros.start_node(params_file())
    col = ros.collector(CAM, ["semantic", "overlay", "instances"])
    pub = ros.publisher(CAM)
    assert ros.matched(pub)
    _, key = frame(ros, pub, col)
    assert ros.wait_for(lambda: col.msg("overlay", key) and col.msg("instances", key), 10)
    before = [i.score for i in col.msg("instances", key).instances]
    assert any(0.5 <= s < 0.9 for s in before), f"precondition: an instance scoring in [0.5, 0.9): {before}"

    results = set_params(ros, thresholds__score=0.9, outputs__overlay=False, node__max_batch=1)
    for k, res in results.items():
        assert res.successful, f"{k} refused: {res.reason}"
    assert get(ros, "thresholds.score", "outputs.overlay", "node.max_batch") == {
        "thresholds.score": 0.9,
        "outputs.overlay": False,
        "node.max_batch": 1,
    }
    _, key2 = frame(ros, pub, col)
    assert ros.wait_for(lambda: col.msg("instances", key2), 10)
    ros.spin_for(1.0)
    assert col.msg("overlay", key2) is None, "overlay still published after outputs.overlay:=false"
    after = [i.score for i in col.msg("instances", key2).instances]
    assert all(s >= 0.9 for s in after), f"thresholds.score 0.9 not applied: scores {after}"
    assert len(after) < len(before)


def test_overlay_alpha_applies_to_the_next_frame(ros):
    ros.start_node(params_file())
    col = ros.collector(CAM, ["semantic", "overlay"])
    pub = ros.publisher(CAM)
    assert ros.matched(pub)
    sent, key = frame(ros, pub, col)
    assert ros.wait_for(lambda: col.msg("overlay", key), 10)
    camera = pixels(sent).astype(int)
    before = np.abs(pixels(col.msg("overlay", key)).astype(int) - camera).mean()
    res = set_params(ros, colors__overlay_alpha=0.2)["colors.overlay_alpha"]
    assert res.successful, res.reason
    assert get(ros, "colors.overlay_alpha") == {"colors.overlay_alpha": 0.2}
    sent2, key2 = frame(ros, pub, col)
    assert ros.wait_for(lambda: col.msg("overlay", key2), 10)
    after = np.abs(pixels(col.msg("overlay", key2)).astype(int) - pixels(sent2).astype(int)).mean()
    assert after < 0.7 * before, f"overlay not closer to the camera image with alpha 0.2: {after:.1f} vs {before:.1f}"


@pytest.mark.parametrize(
    "key,value",
    [
        ("device", "cuda:0"),
        ("heads.scene.checkpoint", "/nonexistent/eomt"),
        ("input.topics", ["/other/image_raw"]),
        ("thresholds.score", 1.5),
        ("node.max_batch", 0),
        ("colors.overlay_alpha", -0.1),
    ],
)
def test_start_up_keys_and_out_of_range_values_are_refused(ros, key, value):
    p = params_file()
    ros.start_node(p)
    old = get(ros, key)[key]
    res = set_params(ros, **{key.replace(".", "__"): value})[key]
    assert not res.successful, f"{key} := {value!r} accepted"
    assert res.reason.strip(), f"{key}: refused without a reason"
    assert get(ros, key) == {key: old}, "the refused value was stored"
    # The node goes on as before.
    col = ros.collector(CAM, ["semantic"])
    pub = ros.publisher(CAM)
    assert ros.matched(pub)
    frame(ros, pub, col)


def test_atomic_set_is_all_or_nothing_and_changes_are_announced(ros):
    from rcl_interfaces.msg import ParameterEvent
    from rcl_interfaces.srv import SetParametersAtomically

    ros.start_node(params_file())
    events = []
    ros.node.create_subscription(ParameterEvent, "/parameter_events", events.append, 10)
    ros.spin_for(1.0)

    def atomic(**values):
        keys = [k.replace("__", ".") for k in values]
        ps = [Parameter(name=k, value=to_msg(v)) for k, v in zip(keys, values.values())]
        return ros.call(SetParametersAtomically, "/dinoseg/set_parameters_atomically",
                        SetParametersAtomically.Request(parameters=ps)).result

    before = get(ros, "thresholds.score", "colors.overlay_alpha")
    # One bad key refuses the whole set: nothing changes, the reason names the key.
    r = atomic(thresholds__score=0.7, device="cpu", colors__overlay_alpha=0.3)
    assert not r.successful and "device" in r.reason, r
    assert get(ros, "thresholds.score", "colors.overlay_alpha") == before
    # A good set applies every key and is announced on /parameter_events with the new values.
    r = atomic(thresholds__score=0.7, colors__overlay_alpha=0.3)
    assert r.successful, r.reason
    assert get(ros, "thresholds.score", "colors.overlay_alpha") == {"thresholds.score": 0.7, "colors.overlay_alpha": 0.3}
    assert ros.wait_for(lambda: any(e.node == "/dinoseg" and {p.name for p in e.changed_parameters}
                                    >= {"thresholds.score", "colors.overlay_alpha"} for e in events), 5.0), \
        [(e.node, [p.name for p in e.changed_parameters]) for e in events]
