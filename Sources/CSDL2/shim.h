#ifndef AVGAS_CSDL2_SHIM_H
#define AVGAS_CSDL2_SHIM_H
#define SDL_MAIN_HANDLED
#include <SDL2/SDL.h>
/* Function-like macros do not import into Swift: re-export them as constants. */
static const int AVGAS_SDL_WINDOWPOS_UNDEFINED = SDL_WINDOWPOS_UNDEFINED;
static const int AVGAS_SDL_WINDOWPOS_CENTERED = SDL_WINDOWPOS_CENTERED;
static inline int avgas_sdl_windowpos_centered_display(int d) { return (int)SDL_WINDOWPOS_CENTERED_DISPLAY(d); }
static const Uint32 AVGAS_SDL_PIXELFORMAT_ARGB8888 = SDL_PIXELFORMAT_ARGB8888;
static const Uint32 AVGAS_SDL_PIXELFORMAT_ABGR8888 = SDL_PIXELFORMAT_ABGR8888;
static const Uint32 AVGAS_SDL_PIXELFORMAT_RGBA32 = SDL_PIXELFORMAT_RGBA32;
#endif
