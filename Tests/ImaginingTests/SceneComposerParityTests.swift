import Foundation
import Imagining
import NeuralNet
import TestSupport
import XCTest

/// The Swift scene composer against its Python reference, training/generator/compose.py, on the
/// fixture written by tools/make_compose_fixture.py: non-square canvases, three and four items
/// in all three layers, a score tie, and images that are gradients, stripes and rings (not
/// solid), so orientation, the colour mask, its blur, the feathered ellipse, bilinear resizing,
/// placement and paint order all show in the output; and two cases for rules the first two never
/// reach: box corners at exact halves (Python's round goes to the even neighbour) and a layer
/// name outside sky / middle / ground (middle, as compose.py's defaults).
///
/// Tolerance: every channel within 1 of Python's value (quantised like the Swift composer:
/// floor(v * 255 + 0.5)) and at most 1% of the channels off by that 1. Python does the
/// coordinate and vignette arithmetic in float64 and Swift in float32, so a value that lands
/// within ~1e-5 of a quantisation boundary may round the other way; any rule difference
/// (a box off by a pixel, a flipped image, a missing blur) changes far more values, by far more.
final class SceneComposerParityTests: XCTestCase {
    struct Case: Decodable {
        struct Item: Decodable { var name: String; var layer: String; var score: Float }
        var name: String
        var width: Int
        var height: Int
        var items: [Item]
    }

    func testMatchesPythonReference() throws {
        let f = try SafeTensorsFile(path: TestPaths.fixture("ImaginingTests", "compose_golden.safetensors").path)
        let cases = try f.metadataJSON("cases", as: [Case].self)
        XCTAssertEqual(cases.count, 4)
        for c in cases {
            let items = try c.items.enumerated().map { k, it -> SceneComposer.Item in
                let name = "\(c.name).item\(k)"
                let shape = try f.info(name).shape
                XCTAssertEqual(shape.count, 3)
                let image = GeneratedImage(width: shape[1], height: shape[0], rgb: Array(try f.bytes(name)))
                return SceneComposer.Item(name: it.name, image: image, score: it.score, layer: it.layer)
            }
            let ref = Array(try f.bytes("\(c.name).out"))
            XCTAssertEqual(try f.info("\(c.name).out").shape, [c.height, c.width, 3])
            let out = SceneComposer.compose(items, width: c.width, height: c.height)
            XCTAssertEqual(out.width, c.width)
            XCTAssertEqual(out.height, c.height)
            XCTAssertEqual(out.rgb.count, ref.count)
            var worst = 0, off = 0
            for (a, b) in zip(out.rgb, ref) {
                let d = abs(Int(a) - Int(b))
                worst = max(worst, d)
                if d > 0 { off += 1 }
            }
            print("compose parity \(c.name): max |diff| \(worst), \(off) of \(ref.count) channels differ")
            XCTAssertLessThanOrEqual(worst, 1, c.name)
            XCTAssertLessThanOrEqual(off, ref.count / 100, c.name)
            // The fixture really exercises the rules: a good part of the canvas is painted.
            XCTAssertGreaterThan(ref.filter { $0 != 200 }.count, ref.count / 5, c.name)
        }
    }
}
