"""People and body keypoints in real images, from pose networks trained on real photographs.

The networks (docs/MODELS.md) ship as ONNX files under ``weights/``, each checked against its SHA-256
before it is loaded:

* :mod:`~maed.perception.movenet`: MoveNet MultiPose Lightning finds up to 6 people per image, with a box
  and the 17 COCO keypoints each;
* :mod:`~maed.perception.blazepose`: BlazePose GHUM 3D (lite, full, heavy) gives 33 landmarks with
  visibility, and the same 33 in metres around the hips, for one person crop;
* :mod:`~maed.perception.detectors`: the person-detector tiers the demo chooses from (MoveNet, the user's
  boxes, a local torchvision/YOLO file, OpenCV's HOG, the whole frame);
* :mod:`~maed.perception.runtime`: the one place that runs a network (ONNX Runtime, CPU or CUDA).

The demo and evaluation on rendered frames both use this package; it depends on nothing above it.
"""
