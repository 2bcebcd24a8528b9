#ifndef TERNARYQUANT_COPENCL_SHIM_H
#define TERNARYQUANT_COPENCL_SHIM_H

/* Target the OpenCL 1.2 API: it is what every driver we care about (PoCL, NVIDIA, AMD, Intel) offers. */
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif

#if defined(__APPLE__)
#include <OpenCL/opencl.h>
#else
#include <CL/cl.h>
#endif

#endif
