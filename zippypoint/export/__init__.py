"""Deployment exports of ZippyPoint networks: ONNX fp32, ONNX int8 (QDQ for ONNX Runtime) and CoreML.

The exported graphs return the dense maps of the network; keypoint selection and descriptor binarisation
run in the torch-free runtime (``zippypoint.runtime``). Entry point: :func:`zippypoint.export.exporter.export_model`.
This package needs torch; only :mod:`zippypoint.export.metadata` is torch-free (the runtime reads it).
"""
