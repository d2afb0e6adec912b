import Foundation
import Imagining
import XCTest

final class SceneComposerTests: XCTestCase {
    func solid(_ r: UInt8, _ g: UInt8, _ b: UInt8, side: Int = 32) -> GeneratedImage {
        GeneratedImage(width: side, height: side, rgb: (0..<(side * side)).flatMap { _ in [r, g, b] })
    }

    /// One item: a feathered disc of its colour in the middle, grey background at the corners.
    func testSingleItemIsCentredOnGrey() {
        let out = SceneComposer.compose([.init(name: "a", image: solid(255, 0, 0), score: 1, layer: "middle")], width: 100, height: 100)
        XCTAssertEqual(Array(out.rgb[0..<3]), [200, 200, 200])
        let c = (50 * 100 + 50) * 3
        XCTAssertEqual(Array(out.rgb[c..<(c + 3)]), [255, 0, 0])
    }

    /// Layers: a sky item is placed above a ground item; scores scale the boxes.
    func testLayersAndSalience() {
        let sky = SceneComposer.Item(name: "bird", image: solid(0, 0, 255), score: 0.9, layer: "sky")
        let ground = SceneComposer.Item(name: "dog", image: solid(0, 255, 0), score: 0.3, layer: "ground")
        let out = SceneComposer.compose([ground, sky], width: 200, height: 200)
        func centroid(_ ch: Int) -> (Double, Double) {
            var sx = 0.0, sy = 0.0, n = 0.0
            for y in 0..<200 { for x in 0..<200 where out.rgb[(y * 200 + x) * 3 + ch] > 230 && out.rgb[(y * 200 + x) * 3 + (ch == 2 ? 1 : 2)] < 60 {
                sx += Double(x); sy += Double(y); n += 1
            } }
            return (sx / max(n, 1), sy / max(n, 1))
        }
        let b = centroid(2), g = centroid(1)
        XCTAssertLessThan(b.1, g.1)           // sky above ground
        XCTAssertLessThan(b.0, g.0)           // placement order: sky first (left)
        var blue = 0, green = 0
        for p in 0..<(200 * 200) {
            if out.rgb[p * 3 + 2] > 230 && out.rgb[p * 3] < 60 { blue += 1 }
            if out.rgb[p * 3 + 1] > 230 && out.rgb[p * 3] < 60 { green += 1 }
        }
        XCTAssertGreaterThan(blue, green)     // the louder class gets the bigger box
    }

    /// Grey parts of an image are transparent: they never cover what is behind them.
    func testGreyIsTransparent() {
        let out = SceneComposer.compose([.init(name: "g", image: solid(200, 200, 200), score: 1, layer: "middle")], width: 64, height: 64)
        XCTAssertTrue(out.rgb.allSatisfy { $0 == 200 })
    }

    func testNoiseIsSeededAndGaussian() {
        var a = NoiseSource(seed: 5), b = NoiseSource(seed: 5)
        var x = [Float](repeating: 0, count: 20_000), y = x
        x.withUnsafeMutableBufferPointer { a.fill($0.baseAddress!, count: $0.count) }
        y.withUnsafeMutableBufferPointer { b.fill($0.baseAddress!, count: $0.count) }
        XCTAssertEqual(x, y)
        let mean = x.reduce(0, +) / Float(x.count)
        let variance = x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(x.count)
        XCTAssertEqual(mean, 0, accuracy: 0.03)
        XCTAssertEqual(variance, 1, accuracy: 0.05)
    }

    /// The image is not transposed or mirrored on its way into the scene: an image red on its left
    /// half and blue on its right, green on top, keeps that layout (square solid images hide this).
    func testImageKeepsItsOrientation() {
        let side = 32
        var rgb = [UInt8]()
        for y in 0..<side {
            for x in 0..<side { rgb += y < 4 ? [0, 255, 0] : (x < side / 2 ? [255, 0, 0] : [0, 0, 255]) }
        }
        let out = SceneComposer.compose([.init(name: "a", image: GeneratedImage(width: side, height: side, rgb: rgb), score: 1,
                                               layer: "middle")], width: 100, height: 100)
        func px(_ x: Int, _ y: Int) -> [UInt8] { Array(out.rgb[((y * 100 + x) * 3)..<((y * 100 + x) * 3 + 3)]) }
        XCTAssertEqual(px(35, 50), [255, 0, 0], "left of centre is red")
        XCTAssertEqual(px(65, 50), [0, 0, 255], "right of centre is blue")
        let top = px(50, 12)   // green, faded towards the grey by the feathered edge
        XCTAssertGreaterThan(Int(top[1]), Int(top[0]) + 50, "the top rows are green, not red: \(top)")
    }

    /// The louder class is painted last, over a quieter one in the same place.
    func testLouderItemIsPaintedOnTop() {
        // 100 x 200 canvas: both boxes (128 and 112 px) are wider than the canvas, so both are centred.
        let loud = SceneComposer.Item(name: "loud", image: solid(255, 0, 0), score: 0.9, layer: "middle")
        let quiet = SceneComposer.Item(name: "quiet", image: solid(0, 0, 255), score: 0.45, layer: "middle")
        for items in [[loud, quiet], [quiet, loud]] {
            let out = SceneComposer.compose(items, width: 100, height: 200)
            let c = (100 * 100 + 50) * 3
            XCTAssertEqual(Array(out.rgb[c..<(c + 3)]), [255, 0, 0])
        }
    }

    /// Box sides: H * BASE[n] * (0.75 + 0.25 score / max score), BASE[2] = 0.64: 128 and 112 px
    /// on a 200 px high canvas for scores 1 and 0.5 (measured down the middle of each item).
    func testBoxSidesFollowCountAndScore() {
        let a = SceneComposer.Item(name: "a", image: solid(255, 0, 0), score: 1.0, layer: "middle")
        let b = SceneComposer.Item(name: "b", image: solid(0, 0, 255), score: 0.5, layer: "middle")
        let w = 1000, h = 200
        let out = SceneComposer.compose([b, a], width: w, height: h)
        // Placement: a (louder) first, centred at x = 250; b at x = 750.
        func extent(_ x: Int) -> Int { (0..<h).filter { out.rgb[($0 * w + x) * 3 + 1] != 200 }.count }
        XCTAssertEqual(Double(extent(250)), 128, accuracy: 3)
        XCTAssertEqual(Double(extent(750)), 112, accuracy: 3)
        // One item alone: BASE[1] = 0.92, 184 px.
        let one = SceneComposer.compose([a], width: w, height: h)
        XCTAssertEqual(Double((0..<h).filter { one.rgb[($0 * w + 500) * 3 + 1] != 200 }.count), 184, accuracy: 3)
    }
}
