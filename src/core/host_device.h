#pragma once
// DDP_HOST_DEVICE marks small inline functions that host code and CUDA kernels share.

#ifdef __CUDACC__
#define DDP_HOST_DEVICE __host__ __device__
#else
#define DDP_HOST_DEVICE
#endif
