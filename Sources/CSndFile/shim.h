#ifndef AVGAS_CSNDFILE_SHIM_H
#define AVGAS_CSNDFILE_SHIM_H
#include <sndfile.h>
#endif
