#ifndef AVGAS_CALSA_SHIM_H
#define AVGAS_CALSA_SHIM_H
#include <alsa/asoundlib.h>

/// ALSA's error handler is variadic, which Swift cannot implement. This one ignores its
/// arguments so alsa-lib prints nothing; the program reports its own clear errors instead.
static void avgas_alsa_silent_handler(const char *file, int line, const char *function, int err, const char *fmt, ...) {
    (void)file; (void)line; (void)function; (void)err; (void)fmt;
}
static inline void avgas_alsa_silence_errors(void) {
    snd_lib_error_set_handler(avgas_alsa_silent_handler);
}
static const int AVGAS_SND_PCM_NONBLOCK = SND_PCM_NONBLOCK;
#endif
