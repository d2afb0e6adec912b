import CSDL2TTF
import Foundation

/// Text for labels, through SDL2_ttf (FreeType) with the DejaVu Sans font.
/// Rendered strings are cached as coverage masks: labels repeat every frame.
public final class TextRenderer {
    public struct Mask { public let width: Int; public let height: Int; public let coverage: [UInt8] }

    public static let defaultFontPaths = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
    ]
    private var fonts: [Int: OpaquePointer] = [:]
    private let fontPath: String?
    private var cache: [String: Mask] = [:]

    /// Opens the first font found. Without one, text is skipped (drawing still works).
    public init(fontPaths: [String] = TextRenderer.defaultFontPaths) {
        if TTF_WasInit() == 0 { TTF_Init() }
        fontPath = fontPaths.first { FileManager.default.fileExists(atPath: $0) }
    }

    deinit {
        for (_, f) in fonts { TTF_CloseFont(f) }
    }

    public var hasFont: Bool { fontPath != nil }

    private func font(size: Int) -> OpaquePointer? {
        if let f = fonts[size] { return f }
        guard let fontPath, let f = TTF_OpenFont(fontPath, Int32(size)) else { return nil }
        fonts[size] = f
        return f
    }

    /// Coverage mask of `text` at `size` pixels.
    public func mask(_ text: String, size: Int) -> Mask? {
        let key = "\(size)|\(text)"
        if let m = cache[key] { return m }
        guard !text.isEmpty, let f = font(size: size) else { return nil }
        let white = SDL_Color(r: 255, g: 255, b: 255, a: 255)
        guard let surf = TTF_RenderUTF8_Blended(f, text, white) else { return nil }
        defer { SDL_FreeSurface(surf) }
        let w = Int(surf.pointee.w), h = Int(surf.pointee.h), pitch = Int(surf.pointee.pitch)
        var cov = [UInt8](repeating: 0, count: w * h)
        // Blended output is ARGB8888: coverage is the alpha byte.
        let base = surf.pointee.pixels.assumingMemoryBound(to: UInt8.self)
        for y in 0..<h {
            let row = (base + y * pitch).withMemoryRebound(to: UInt32.self, capacity: w) { $0 }
            for x in 0..<w { cov[y * w + x] = UInt8(row[x] >> 24) }
        }
        let m = Mask(width: w, height: h, coverage: cov)
        if cache.count > 512 { cache.removeAll(keepingCapacity: true) }
        cache[key] = m
        return m
    }

    /// Draws `text` with its top-left at (x, y); returns its width in pixels.
    @discardableResult
    public func draw(_ text: String, x: Int, y: Int, size: Int, color: Color, into fb: inout Framebuffer, maxWidth: Int? = nil) -> Int {
        guard var m = mask(text, size: size) else { return 0 }
        if let maxWidth, m.width > maxWidth, maxWidth > 0 {
            // Clip long labels rather than overflow into neighbours.
            var cov = [UInt8](repeating: 0, count: maxWidth * m.height)
            for yy in 0..<m.height { for xx in 0..<maxWidth { cov[yy * maxWidth + xx] = m.coverage[yy * m.width + xx] } }
            m = Mask(width: maxWidth, height: m.height, coverage: cov)
        }
        fb.blendMask(m.coverage, maskWidth: m.width, maskHeight: m.height, x: x, y: y, color)
        return m.width
    }
}
