#ifndef AVGAS_CPNG_SHIM_H
#define AVGAS_CPNG_SHIM_H
#include <png.h>
static const png_uint_32 AVGAS_PNG_FORMAT_RGBA = PNG_FORMAT_RGBA;
static const png_uint_32 AVGAS_PNG_FORMAT_RGB = PNG_FORMAT_RGB;
static const png_uint_32 AVGAS_PNG_IMAGE_VERSION = PNG_IMAGE_VERSION;
static const png_uint_32 AVGAS_PNG_FORMAT_BGRA = PNG_FORMAT_BGRA;
static const png_uint_32 AVGAS_PNG_IMAGE_FLAG_FAST = PNG_IMAGE_FLAG_FAST;
#endif
