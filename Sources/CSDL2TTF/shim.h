#ifndef AVGAS_CSDL2TTF_SHIM_H
#define AVGAS_CSDL2TTF_SHIM_H
#define SDL_MAIN_HANDLED
#include <SDL2/SDL_ttf.h>
#endif
