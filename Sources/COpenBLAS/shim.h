#ifndef AVGAS_COPENBLAS_SHIM_H
#define AVGAS_COPENBLAS_SHIM_H
/* The pthread build's cblas.h declares openblas_set_num_threads / openblas_get_corename. */
#include <cblas.h>
#endif
