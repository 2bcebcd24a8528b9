#ifndef TERNARYQUANT_COPENCL_SHIM_H
#define TERNARYQUANT_COPENCL_SHIM_H

/* Target the OpenCL 1.2 API: it is what every driver we care about (PoCL, NVIDIA, AMD, Intel) offers. */
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif

#if defined(__APPLE__)
#include <OpenCL/opencl.h>
#include <OpenCL/cl_ext.h>
#else
#include <CL/cl.h>
#include <CL/cl_ext.h> /* CL_PLATFORM_NOT_FOUND_KHR (cl_khr_icd) */
#endif

#endif
