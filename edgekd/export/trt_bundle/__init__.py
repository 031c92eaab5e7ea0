"""Files copied into every TensorRT bundle (build_engine.py, check.py, bench.sh, trt_common.py).

They run on the Jetson with Python >= 3.8, numpy and TensorRT only: nothing in this folder
imports edgekd.
"""
