"""Files other tools read: animation (glTF binary, BVH) and the network as an ONNX model."""
