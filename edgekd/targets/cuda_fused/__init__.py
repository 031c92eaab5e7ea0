"""Target ``cuda-fused``: a tiny student as ONE generated Triton kernel (issue 18).

``plan_model`` walks a trained student (an ``nn.Sequential`` of Conv2d, BatchNorm folded into
it, ReLU, Max/AvgPool2d, Flatten, Linear, Dropout/Identity; any widths, kernels, strides,
padding, pools, dense head) into typed stages, or returns :class:`Unsupported` with one line
naming the layer it does not cover. ``generate`` writes one Triton kernel for that plan with
every shape, offset and block size as a literal; ``export_cuda_fused`` writes it with its
packed weights and checks it against the PyTorch model (Triton's interpreter on CPU, the GPU
where present): an :class:`~edgekd.export.artifact.Artifact` with its fidelity record.
``profile_cuda_fused`` times it on a GPU (host p50/p99, device time, CUDA-graph replay).

Design note: what bounds batch-1 latency on Hopper (H100/H200)
================================================================

Arithmetic. The study's student (5,682 parameters, 1×48×48 → 2) is 1,323,968 MACs:
conv1 304,704 (46·46·16·9), conv2 1,016,064 (21·21·16·144), dense 3,200. The kernel computes
each conv directly at its pooled positions (the 2×2 window is a register axis reduced in
place), so the pre-pool maps are never stored and conv2 computes only the 20×20 outputs its
floor-mode pool reads (921,600 MACs). With the batch-1 blocks (4 warps, [16 ch, 64 positions,
4 window]) padding raises the issued FMA lanes to ≈1.52 M: conv1 331,776 (529 → 576
positions), conv2 1,179,648 (100 → 128), dense 4,096.

Compute bound, one program per image. One SM issues 128 fp32 FMAs per clock (4 × 32
lanes); at the H200's 1.98 GHz boost 1.52 M lanes take ≥ 11.9 k clocks ≈ 6.0 µs, if FMA
issue were the only cost. Loads are not the bound: the im2col reads of one image are ≈ 95 k
fp32 from L1 (32 per clock per SM → ≈ 1.5 µs, overlappable), weights are 22.7 KB.
Expect 7–10 µs of device time per image in one program once address arithmetic and the
three barriers are counted (offline sm_90 build: 128 registers, no spills).

Launch bound. The measured floor on an H200 (notes/measured-anchors.md) is 10.5 µs
host-timed for a CUDA graph replaying one trivial kernel, with synchronization. A Python
launch of a Triton kernel adds its launcher's overhead on top, so batch 1 is timed as a
graph replay of the single launch (``fused-graph``): no allocation, no host sync other than
the caller's, a preallocated output, the input already on the device.

Copies. Input 9,216 B host→device, output 8 B back: with pinned buffers two small
``cudaMemcpyAsync`` of a few µs each; timed separately (``fused-graph-copies``), since the
study's FPGA figure and the 31.5–34 µs CUDA-graph anchor exclude them.

So at batch 1 with one program, host time ≈ 10.5 µs floor + ~6–8 µs of compute beyond the
trivial kernel ≈ 17–19 µs: launch-bound plus one SM's FMA rate, above the 14.5 µs goal. What
moves it under is spreading the image over several SMs, which ``generate(..., split=S)`` does:
S programs each recompute conv1 (331,776 lanes, the cheap layer), compute 16/S of conv2's
output channels (S = 8: 2 channels → 147,456 lanes) and their features' partial sums of the
dense layer; the last program to arrive (an atomic counter per image, acquire/release at GPU
scope, reset by that program so graph replays need no memset node) adds the S partials in a
fixed order. Per program ≈ 0.48 M lanes ≈ 1.9 µs at full FMA issue, so the expected batch-1
figure is the floor plus a few µs; conv1's recomputation is then the largest term (splitting
it too would need a second grid-wide handoff). The profiler times split 1 and 8, each with 4
and 8 warps (offline sm_90 builds, Triton 3.6.0 and 3.7.1: 128–168 registers, no spills).

Throughput. 4096 images × 1.52 M lanes on 132 SMs × 128 lanes × 1.98 GHz ≈ 0.19 ms → an
upper bound of ≈ 21 M images/s; input reads 37.7 MB ≈ 8 µs at 4.8 TB/s. A persistent grid
(at most 4 programs per SM, the register-limited residency) keeps the per-program scratch
(40 KB for the study's CNN) inside the 60 MB L2. The 1 M images/s goal has ~20× headroom.

Where activations live. Triton exposes registers but no user-managed shared memory. Each
stage's block — [images, channels, positions, pool window] — is in registers; the pooled
map that the next convolution must read through its window (im2col) is written once to a
per-program scratch slice and read back after a barrier by the same program: on a GPU it is
served from L1/L2 (write-through L1, 60 MB write-back L2) and, for the study's student, never
needs HBM. ``tl.gather`` from registers would stage through shared memory at every call (one
per tap), which costs more than the L1 round trip. None of these figures is measured here.
"""
from edgekd.targets.cuda_fused.codegen import GeneratedKernel, generate, split_point
from edgekd.targets.cuda_fused.export import check_fused, export_cuda_fused
from edgekd.targets.cuda_fused.plan import (ConvStage, DenseStage, FusedPlan, Pool, PoolStage, Unsupported,
                                            plan_model)
from edgekd.targets.cuda_fused.runtime import FusedKernel, require_triton, run_fused, triton_version
from edgekd.targets.cuda_fused.target import CudaFusedTarget

__all__ = ["ConvStage", "CudaFusedTarget", "DenseStage", "FusedKernel", "FusedPlan", "GeneratedKernel", "Pool", "PoolStage",
           "Unsupported", "check_fused", "export_cuda_fused", "generate", "plan_model", "require_triton", "run_fused",
           "split_point", "triton_version"]
