import CSDL2
import Foundation

/// What the user asked for with keys or the window manager.
public enum DisplayEvent: Equatable, Sendable {
    case quit                 // Q, Esc, window closed
    case toggleFullscreen     // F
    case screenshot           // S
    case toggleMixMode        // M
    case toggleOverlay        // D
    case toggleRecording      // R
    case cycleSensitivity     // V
    case resized(width: Int, height: Int)
}

/// Display problems at start-up. `description` is the one line the user sees.
public enum DisplayError: Error, CustomStringConvertible, Equatable {
    case noDisplay
    case displayIndex(Int, available: Int)
    case sdl(String)
    public var description: String {
        switch self {
        case .noDisplay:
            return "no display is available (DISPLAY is not set and no window can appear); run with --headless (add --frames DIR to keep the frames)"
        case .displayIndex(let i, let n):
            return "--display \(i) does not exist: this machine has \(n) display\(n == 1 ? "" : "s") (0...\(max(0, n - 1)))"
        case .sdl(let msg):
            return "cannot open a window: \(msg)"
        }
    }
}

/// An SDL2 window that shows framebuffers. Main thread only.
public final class Window {
    private var window: OpaquePointer?
    private var renderer: OpaquePointer?
    private var texture: OpaquePointer?
    private var textureSize = (0, 0)
    public private(set) var isFullscreen: Bool
    /// The SDL video driver in use (x11, wayland, offscreen...).
    public let videoDriver: String

    /// Opens a resizable window. `allowOffscreen` lets tests use SDL's offscreen driver;
    /// otherwise a session without a display is reported as `DisplayError.noDisplay`.
    public init(title: String, width: Int, height: Int, fullscreen: Bool = false, displayIndex: Int = 0,
                allowOffscreen: Bool = false, softwareRenderer: Bool = false) throws(DisplayError) {
        let env = ProcessInfo.processInfo.environment
        let explicitDriver = env["SDL_VIDEODRIVER"]
        if explicitDriver == nil && env["DISPLAY"] == nil && env["WAYLAND_DISPLAY"] == nil && !allowOffscreen {
            throw .noDisplay
        }
        SDL_SetMainReady()
        // Every frame is drawn in software (Framebuffer); SDL only uploads and presents it. Its
        // software renderer on the window's own framebuffer (XShm on X11) does that without
        // OpenGL. Measured on the 30 s demo in a 1280x720 window under Xvfb: the accelerated
        // default loaded Mesa's llvmpipe (LLVM, about 60 MB resident, extra render threads),
        // peak 195 MB and 0.44 core; the software path 106 MB and 0.27 core. Default priority:
        // SDL_RENDER_DRIVER / SDL_FRAMEBUFFER_ACCELERATION in the environment still win.
        SDL_SetHintWithPriority(SDL_HINT_RENDER_DRIVER, "software", SDL_HINT_DEFAULT)
        SDL_SetHintWithPriority(SDL_HINT_FRAMEBUFFER_ACCELERATION, "0", SDL_HINT_DEFAULT)
        if SDL_WasInit(SDL_INIT_VIDEO) == 0 && SDL_InitSubSystem(SDL_INIT_VIDEO) != 0 {
            let msg = String(cString: SDL_GetError())
            if explicitDriver == nil { throw .noDisplay }
            throw .sdl(msg)
        }
        videoDriver = SDL_GetCurrentVideoDriver().map { String(cString: $0) } ?? "none"
        if (videoDriver == "offscreen" || videoDriver == "dummy") && !allowOffscreen && explicitDriver == nil {
            SDL_QuitSubSystem(SDL_INIT_VIDEO)
            throw .noDisplay
        }
        let displays = Int(SDL_GetNumVideoDisplays())
        guard displayIndex >= 0 && displayIndex < max(1, displays) else {
            SDL_QuitSubSystem(SDL_INIT_VIDEO)
            throw .displayIndex(displayIndex, available: displays)
        }
        var flags = SDL_WINDOW_RESIZABLE.rawValue | SDL_WINDOW_ALLOW_HIGHDPI.rawValue
        if fullscreen { flags |= SDL_WINDOW_FULLSCREEN_DESKTOP.rawValue }
        let pos = avgas_sdl_windowpos_centered_display(Int32(displayIndex))
        guard let w = SDL_CreateWindow(title, pos, pos, Int32(width), Int32(height), flags) else {
            let msg = String(cString: SDL_GetError())
            SDL_QuitSubSystem(SDL_INIT_VIDEO)
            throw .sdl(msg)
        }
        window = w
        isFullscreen = fullscreen
        if videoDriver == "x11" { _ = avgas_install_display_lost_handler(windowDisplayLost, 69) }
        let rflags: UInt32 = softwareRenderer ? SDL_RENDERER_SOFTWARE.rawValue : 0
        renderer = SDL_CreateRenderer(w, -1, rflags) ?? SDL_CreateRenderer(w, -1, SDL_RENDERER_SOFTWARE.rawValue)
        guard renderer != nil else {
            let msg = String(cString: SDL_GetError())
            SDL_DestroyWindow(w)
            window = nil
            SDL_QuitSubSystem(SDL_INIT_VIDEO)
            throw .sdl(msg)
        }
    }

    deinit {
        if let texture { SDL_DestroyTexture(texture) }
        if let renderer { SDL_DestroyRenderer(renderer) }
        if let window { SDL_DestroyWindow(window) }
        SDL_QuitSubSystem(SDL_INIT_VIDEO)
    }

    /// Size of the drawable area in pixels (the framebuffer should match it).
    public var drawableSize: (width: Int, height: Int) {
        var w: Int32 = 0, h: Int32 = 0
        SDL_GetRendererOutputSize(renderer, &w, &h)
        return (Int(w), Int(h))
    }

    /// Uploads the framebuffer and shows it.
    public func present(_ fb: Framebuffer) {
        if texture == nil || textureSize != (fb.width, fb.height) {
            if let texture { SDL_DestroyTexture(texture) }
            texture = SDL_CreateTexture(renderer, AVGAS_SDL_PIXELFORMAT_ARGB8888,
                                        Int32(SDL_TEXTUREACCESS_STREAMING.rawValue), Int32(fb.width), Int32(fb.height))
            textureSize = (fb.width, fb.height)
        }
        fb.pixels.withUnsafeBytes { p in
            _ = SDL_UpdateTexture(texture, nil, p.baseAddress, Int32(fb.width * 4))
        }
        SDL_RenderClear(renderer)
        SDL_RenderCopy(renderer, texture, nil, nil)
        SDL_RenderPresent(renderer)
    }

    /// Reads back what the renderer shows (ARGB8888), for tests.
    public func readPixels() -> [UInt32]? {
        let (w, h) = drawableSize
        var out = [UInt32](repeating: 0, count: w * h)
        let rc = out.withUnsafeMutableBytes { p in
            SDL_RenderReadPixels(renderer, nil, AVGAS_SDL_PIXELFORMAT_ARGB8888, p.baseAddress, Int32(w * 4))
        }
        return rc == 0 ? out : nil
    }

    public func toggleFullscreen() {
        isFullscreen.toggle()
        if isFullscreen {
            var w: Int32 = 0, h: Int32 = 0
            SDL_GetWindowSize(window, &w, &h)
            windowedSize = (w, h)
            SDL_SetWindowFullscreen(window, SDL_WINDOW_FULLSCREEN_DESKTOP.rawValue)
        } else {
            SDL_SetWindowFullscreen(window, 0)
            // Without a window manager SDL restores the size the window was created with, not
            // the one it had (a resize by other means): set it back explicitly.
            if let size = windowedSize, size.0 > 0, size.1 > 0 { SDL_SetWindowSize(window, size.0, size.1) }
        }
    }
    private var windowedSize: (Int32, Int32)?

    /// Drains pending SDL events into display events.
    public func pollEvents() -> [DisplayEvent] {
        var out: [DisplayEvent] = []
        var e = SDL_Event()
        while SDL_PollEvent(&e) != 0 {
            switch e.type {
            case SDL_QUIT.rawValue:
                out.append(.quit)
            case SDL_KEYDOWN.rawValue:
                switch Int(e.key.keysym.sym) {
                case Int(SDLK_q.rawValue), Int(SDLK_ESCAPE.rawValue): out.append(.quit)
                case Int(SDLK_f.rawValue): out.append(.toggleFullscreen)
                case Int(SDLK_s.rawValue): out.append(.screenshot)
                case Int(SDLK_m.rawValue): out.append(.toggleMixMode)
                case Int(SDLK_d.rawValue): out.append(.toggleOverlay)
                case Int(SDLK_r.rawValue): out.append(.toggleRecording)
                case Int(SDLK_v.rawValue) where e.key.repeat == 0:   // a held key cycles once, not on and on
                    out.append(.cycleSensitivity)
                default: break
                }
            case SDL_WINDOWEVENT.rawValue:
                if e.window.event == UInt8(SDL_WINDOWEVENT_SIZE_CHANGED.rawValue) {
                    let (w, h) = drawableSize
                    out.append(.resized(width: w, height: h))
                }
            default: break
            }
        }
        return out
    }
}

/// Called from Xlib's I/O error handler when the X server goes away (see the CSDL2 shim): the
/// process ends right after with status 69, so the hook finalises outputs and says what happened.
nonisolated(unsafe) public var displayLostHook: (() -> Void)?

private func windowDisplayLost() {
    displayLostHook?()
}
