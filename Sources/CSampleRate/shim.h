#ifndef AVGAS_CSAMPLERATE_SHIM_H
#define AVGAS_CSAMPLERATE_SHIM_H
#include <samplerate.h>
#endif
