#ifndef AVGAS_CFFTW_SHIM_H
#define AVGAS_CFFTW_SHIM_H
/* No <complex.h> first: fftwf_complex then imports as (Float, Float). */
#include <fftw3.h>
#endif
