"""GLB files read back and evaluated independently of the writer (pygltflib + numpy skinning), checked against
the body models' own output, the glTF structure rules and the Khronos validator."""

import json
import struct

import numpy as np
import pytest
import torch

from maed.errors import DataError, MaedError, OutputError
from maed.export.gltf import write_glb
from maed.export.rig import CAMERA_TO_FILE, rig_from_body_model

pygltflib = pytest.importorskip("pygltflib")

T, FPS = 3, 25.0
_DTYPES = {5126: np.float32, 5121: np.uint8, 5123: np.uint16, 5125: np.uint32}
_WIDTH = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def read_accessor(gltf, index: int) -> np.ndarray:
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    width = _WIDTH[acc.type]
    offset = view.byteOffset + (acc.byteOffset or 0)
    data = np.frombuffer(gltf.binary_blob(), _DTYPES[acc.componentType], count=acc.count * width, offset=offset)
    return data.reshape(acc.count, width)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    x, y, z, w = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip


def evaluate_glb(path, key: int) -> tuple[np.ndarray, np.ndarray]:
    """Pose the file's skinned mesh at animation key ``key`` as a glTF viewer would: node TRS overridden by the
    animation's sampled values, world matrices down the node tree, joint matrix = world @ inverse bind matrix,
    linear blend skinning with the stored JOINTS_0 / WEIGHTS_0. Returns vertices V x 3 and joint positions
    J x 3 (world, in the skin's joint order)."""
    gltf = pygltflib.GLTF2().load(str(path))
    trs = {
        i: [n.translation or [0, 0, 0], n.rotation or [0, 0, 0, 1], n.scale or [1, 1, 1]]
        for i, n in enumerate(gltf.nodes)
    }
    anim = gltf.animations[0]
    for channel in anim.channels:
        sampler = anim.samplers[channel.sampler]
        values = read_accessor(gltf, sampler.output)
        slot = {"translation": 0, "rotation": 1, "scale": 2}[channel.target.path]
        trs[channel.target.node][slot] = values[key]

    def local(i):
        t, r, s = trs[i]
        m = np.eye(4)
        m[:3, :3] = quat_to_matrix(np.asarray(r, dtype=np.float64)) * np.asarray(s)
        m[:3, 3] = t
        return m

    world = {}

    def visit(i, parent):
        world[i] = parent @ local(i)
        for c in gltf.nodes[i].children or []:
            visit(c, world[i])

    for root in gltf.scenes[gltf.scene].nodes:
        visit(root, np.eye(4))
    mesh_node = next(n for n in gltf.nodes if n.mesh is not None)
    skin = gltf.skins[mesh_node.skin]
    ibm = read_accessor(gltf, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)  # column-major
    joint_mats = np.stack([world[n] for n in skin.joints]) @ ibm  # (J, 4, 4)
    prim = gltf.meshes[mesh_node.mesh].primitives[0]
    pos = read_accessor(gltf, prim.attributes.POSITION).astype(np.float64)
    joints = read_accessor(gltf, prim.attributes.JOINTS_0).astype(np.int64)
    weights = read_accessor(gltf, prim.attributes.WEIGHTS_0).astype(np.float64)
    skin_mats = np.einsum("vk,vkab->vab", weights, joint_mats[joints])  # (V, 4, 4)
    verts = np.einsum("vab,vb->va", skin_mats[:, :3, :3], pos) + skin_mats[:, :3, 3]
    return verts, np.stack([world[n][:3, 3] for n in skin.joints])


def _body_output(body, rotmats, betas):
    out = body(
        torch.as_tensor(rotmats, dtype=torch.float32),
        torch.as_tensor(betas, dtype=torch.float32).expand(len(rotmats), -1),
    )
    joints = getattr(out, "bone_heads", out.joints)  # Anny: the rig's joints are its bone heads
    return out.verts.double().numpy(), joints.double().numpy()


@pytest.fixture(scope="module")
def sequences(anny_body, anny_cmu_body, smpl_lbs_body, random_rotmats, camera_root, tmp_path_factory):
    """One GLB per body model / rig, written from a random sequence, with what was written."""
    out = tmp_path_factory.mktemp("glb")
    rng = np.random.default_rng(5)
    seqs = {}
    for key, body, betas in [
        ("anny", anny_body, np.array([0.3, -0.2, 0.25, -0.3, 0.2, 0.1])),
        ("cmu", anny_cmu_body, np.array([-0.2, 0.3, 0.0, 0.2, -0.3, 0.1])),
        ("smpl", smpl_lbs_body, rng.normal(size=10)),
    ]:
        rig = rig_from_body_model(body, betas)
        R = random_rotmats(T, rig.num_joints, scale=0.3, seed=len(seqs))
        trans = rng.normal(scale=0.3, size=(T, 3))
        path = out / f"{key}.glb"
        write_glb(path, rig, R, trans, FPS, name=key, frame="model")
        seqs[key] = dict(body=body, betas=betas, rig=rig, rotmats=R, trans=trans, path=path)
    # a predicted sequence: camera-frame root, vertex colours, one frame
    rig = seqs["smpl"]["rig"]
    R = random_rotmats(1, 24, scale=0.2, seed=9)
    R[:, 0] = camera_root(1)
    colors = np.random.default_rng(0).uniform(size=(rig.num_vertices, 3))
    path = out / "predicted.glb"
    write_glb(path, rig, R, np.array([[0.1, -0.2, 4.0]]), 30, color=colors)
    seqs["predicted"] = dict(body=smpl_lbs_body, betas=seqs["smpl"]["betas"], rig=rig, rotmats=R, path=path)
    return seqs


@pytest.mark.parametrize("key", ["anny", "cmu"])
def test_glb_skinned_mesh_reproduces_anny(sequences, key):
    s = sequences[key]
    verts, joints = _body_output(s["body"], s["rotmats"], s["betas"])
    verts, joints = verts + s["trans"][:, None], joints + s["trans"][:, None]
    errors = []
    for t in range(T):
        file_verts, file_joints = evaluate_glb(s["path"], t)
        assert np.abs(file_joints - joints[t]).max() < 5e-5  # the skeleton is exact (float32 file)
        # the mesh differs only by the four-weight truncation: equal to our own 4-weight skinning ...
        expected4 = s["rig"].skin(s["rotmats"][t : t + 1], s["trans"][t : t + 1], max_influences=4)[0]
        assert np.abs(file_verts - expected4).max() < 5e-5
        errors.append(np.linalg.norm(file_verts - verts[t], axis=1))
    err = np.concatenate(errors)
    # ... and close to the body model's mesh (all weights): mean well under a millimetre
    assert err.mean() < 1e-3 and np.percentile(err, 99) < 1e-2 and err.max() < 4e-2, (err.mean(), err.max())


def test_glb_skinned_mesh_reproduces_smpl_without_pose_blend_shapes(sequences):
    s = sequences["smpl"]
    verts, _ = _body_output(s["body"], s["rotmats"], s["betas"])
    for t in range(T):
        file_verts, _ = evaluate_glb(s["path"], t)
        assert np.abs(file_verts - (verts[t] + s["trans"][t])).max() < 5e-5


def test_glb_of_a_prediction_is_upright_and_in_front_of_the_camera(sequences):
    s = sequences["predicted"]
    verts, _ = _body_output(s["body"], s["rotmats"], s["betas"])
    file_verts, file_joints = evaluate_glb(s["path"], 0)
    expected = (verts[0] + np.array([0.1, -0.2, 4.0])) @ CAMERA_TO_FILE.T
    assert np.abs(file_verts - expected).max() < 5e-5
    head, pelvis = s["rig"].joint_names.index("head"), 0
    assert file_joints[head, 1] > file_joints[pelvis, 1] + 0.3  # y up
    assert file_joints[pelvis, 2] < -3.5  # glTF cameras look down -z


@pytest.mark.parametrize("key", ["anny", "cmu", "smpl", "predicted"])
def test_glb_structure(sequences, key):
    s = sequences[key]
    rig, R = s["rig"], s["rotmats"]
    frames, J, V = len(R), rig.num_joints, rig.num_vertices
    gltf = pygltflib.GLTF2().load(str(s["path"]))
    assert gltf.asset.version == "2.0" and gltf.asset.extras["frames"] == frames
    prim = gltf.meshes[0].primitives[0]
    attrs = prim.attributes
    for name in ("POSITION", "NORMAL", "JOINTS_0", "WEIGHTS_0"):
        assert gltf.accessors[getattr(attrs, name)].count == V
    assert gltf.accessors[prim.indices].count == 3 * len(rig.faces)
    np.testing.assert_array_equal(read_accessor(gltf, prim.indices).reshape(-1, 3), rig.faces)
    positions = read_accessor(gltf, attrs.POSITION)
    acc = gltf.accessors[attrs.POSITION]
    assert acc.min == positions.min(0).tolist() and acc.max == positions.max(0).tolist()
    np.testing.assert_allclose(np.linalg.norm(read_accessor(gltf, attrs.NORMAL), axis=1), 1.0, atol=1e-6)
    weights = read_accessor(gltf, attrs.WEIGHTS_0)
    assert np.abs(weights.astype(np.float64).sum(1) - 1).max() < 1e-6 and weights.min() >= 0
    joint_ids = read_accessor(gltf, attrs.JOINTS_0)
    assert joint_ids.max() < J
    assert (attrs.COLOR_0 is not None) == (key == "predicted")
    # skeleton: one node per body-model joint, named after it, with its zero-pose offset
    skin = gltf.skins[0]
    assert len(skin.joints) == J == s["body"].num_joints == len(set(skin.joints))
    assert [gltf.nodes[n].name for n in skin.joints] == rig.joint_names
    assert gltf.accessors[skin.inverseBindMatrices].count == J
    for j in range(1, J):
        parent_node = skin.joints[rig.parents[j]]
        assert skin.joints[j] in gltf.nodes[parent_node].children
        np.testing.assert_allclose(gltf.nodes[skin.joints[j]].translation, rig.joint_offsets()[j], atol=1e-9)
    # animation: a rotation channel per joint and the root's translation, one key per frame
    anim = gltf.animations[0]
    paths = sorted((c.target.node, c.target.path) for c in anim.channels)
    assert paths == sorted([(n, "rotation") for n in skin.joints] + [(skin.joints[0], "translation")])
    times = {s.input for s in anim.samplers}
    assert len(times) == 1
    time_acc = gltf.accessors[times.pop()]
    fps = gltf.asset.extras["fps"]
    assert time_acc.count == frames and time_acc.min == [0.0] and time_acc.max == [np.float32((frames - 1) / fps)]
    for sampler in anim.samplers:
        assert sampler.interpolation == "LINEAR" and gltf.accessors[sampler.output].count == frames


def test_quaternion_keys_stay_in_one_hemisphere(smpl_lbs_body, tmp_path):
    """A joint turning steadily through more than a full turn: consecutive keys never flip sign, so LINEAR
    interpolation between keys takes the short way."""
    from scipy.spatial.transform import Rotation

    rig = rig_from_body_model(smpl_lbs_body)
    frames = 40
    R = np.tile(np.eye(3), (frames, 24, 1, 1))
    R[:, 18] = Rotation.from_rotvec(np.outer(np.linspace(0, 2.5 * np.pi, frames), [0.0, 0.6, 0.8])).as_matrix()
    write_glb(tmp_path / "spin.glb", rig, R, None, 30.0, frame="model")
    gltf = pygltflib.GLTF2().load(str(tmp_path / "spin.glb"))
    elbow_node = gltf.skins[0].joints[18]
    anim = gltf.animations[0]
    channel = next(c for c in anim.channels if c.target.node == elbow_node and c.target.path == "rotation")
    q = read_accessor(gltf, anim.samplers[channel.sampler].output).astype(np.float64)
    assert ((q[1:] * q[:-1]).sum(1) > 0.9).all()
    assert q[:, 3].min() < -0.5  # the sign did have to change somewhere (w would stay >= 0 otherwise)
    for t in (0, 17, 39):
        np.testing.assert_allclose(quat_to_matrix(q[t]), R[t, 18], atol=1e-6)


def test_every_glb_passes_the_khronos_validator(sequences, gltf_validator, tmp_path):
    paths = [s["path"] for s in sequences.values()]
    reports = gltf_validator(paths)
    for path, report in zip(paths, reports):
        issues = report["issues"]
        summary = [(m["code"], m["severity"], m["message"]) for m in issues["messages"][:10]]
        assert issues["numErrors"] == 0, (path.name, summary)
        assert issues["numWarnings"] == 0, (path.name, summary)
        assert report["info"]["hasSkins"] and report["info"]["animationCount"] == 1
        assert report["info"]["maxInfluences"] == 4
    # the harness catches a broken file: an accessor's max that does not match its data
    broken = tmp_path / "broken.glb"
    raw = bytearray(paths[0].read_bytes())
    json_len = struct.unpack_from("<I", raw, 12)[0]
    doc = json.loads(raw[20 : 20 + json_len])
    doc["accessors"][0]["max"] = [v + 1.0 for v in doc["accessors"][0]["max"]]
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    out = raw[:12] + struct.pack("<I", len(text)) + raw[16:20] + text + raw[20 + json_len :]
    struct.pack_into("<I", out, 8, len(out))
    broken.write_bytes(bytes(out))
    assert gltf_validator([broken])[0]["issues"]["numErrors"] > 0


def test_glb_loads_in_a_second_reader(sequences):
    trimesh = pytest.importorskip("trimesh")
    for key in ("anny", "smpl"):
        s = sequences[key]
        scene = trimesh.load(str(s["path"]), force="scene")
        meshes = list(scene.geometry.values())
        assert len(meshes) == 1 and len(meshes[0].vertices) == s["rig"].num_vertices
        assert len(meshes[0].faces) == len(s["rig"].faces)


def test_material_colour_and_bad_inputs(smpl_lbs_body, random_rotmats, tmp_path):
    rig = rig_from_body_model(smpl_lbs_body)
    R = random_rotmats(2, 24)
    write_glb(tmp_path / "red.glb", rig, R, None, 30.0, color=(0.9, 0.1, 0.1))
    gltf = pygltflib.GLTF2().load(str(tmp_path / "red.glb"))
    assert gltf.materials[0].pbrMetallicRoughness.baseColorFactor == [0.9, 0.1, 0.1, 1.0]
    with pytest.raises(DataError, match="must lie in"):
        write_glb(tmp_path / "x.glb", rig, R, None, 30.0, color=(2.0, 0.0, 0.0))
    with pytest.raises(DataError, match="color has shape"):
        write_glb(tmp_path / "x.glb", rig, R, None, 30.0, color=np.zeros((5, 3)))
    with pytest.raises(DataError, match="expected T x 24 x 3 x 3"):
        write_glb(tmp_path / "x.glb", rig, R[:, :10], None, 30.0)
    (tmp_path / "folder.glb").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        write_glb(tmp_path / "folder.glb", rig, R, None, 30.0)
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        write_glb(tmp_path / "file" / "x.glb", rig, R, None, 30.0)
    assert not (tmp_path / "x.glb").exists()
    assert issubclass(OutputError, MaedError)
