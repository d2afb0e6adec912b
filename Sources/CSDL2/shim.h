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

/* The X server going away (a display restart): Xlib calls its I/O error handler and then
 * exit(1) after printing two lines of its own. SDL loads libX11 at run time, so the handler is
 * installed through dlsym (no link-time X11 dependency). The handler runs `cb` (the program
 * finalises its outputs and prints its own line) and ends the process with `status`. */
#include <dlfcn.h>
#include <unistd.h>
typedef void (*avgas_display_lost_fn)(void);
static avgas_display_lost_fn avgas_display_lost_cb = 0;
static int avgas_display_lost_status = 69;
static int avgas_xio_handler(void *display) {
    (void)display;
    if (avgas_display_lost_cb) avgas_display_lost_cb();
    _exit(avgas_display_lost_status);
    return 0;
}
/* Returns 1 when the handler is installed (libX11 is loaded, i.e. the x11 video driver is in use). */
static inline int avgas_install_display_lost_handler(avgas_display_lost_fn cb, int status) {
    typedef int (*handler_t)(void *);
    typedef handler_t (*set_t)(handler_t);
    void *lib = dlopen("libX11.so.6", RTLD_LAZY | RTLD_NOLOAD);
    if (!lib) return 0;
    set_t set = (set_t)dlsym(lib, "XSetIOErrorHandler");
    if (!set) return 0;
    avgas_display_lost_cb = cb;
    avgas_display_lost_status = status;
    set(avgas_xio_handler);
    return 1;
}
#endif
