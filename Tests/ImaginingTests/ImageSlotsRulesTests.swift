import Foundation
import Imagining
import NeuralNet
import TestSupport
import XCTest

/// The rules of ImageSlots and ExemplarBank with the committed generator and exemplar bank:
/// retrieval among the class's exemplars only, most similar first, exactly top-k; an exemplar
/// kept while it stays among the top-k; draws spread over the top-k; inactive slots neither
/// refined nor kept past `keepInactive`; the newest slot first under a short budget; a pure-mode
/// drift re-noising the estimate; decoded pixels in RGB order.
final class ImageSlotsRulesTests: XCTestCase {
    static let models = TestPaths.repoRoot.appendingPathComponent("Assets/models")
    let model = try! GeneratorModel(path: models.appendingPathComponent("generator.safetensors").path)
    let bank = try! ExemplarBank(path: models.appendingPathComponent("exemplars.safetensors").path)

    func row(_ t: FloatTensor, _ i: Int) -> [Float] {
        let d = t.count / t.shape[0]
        return Array(UnsafeBufferPointer(start: t.pointer + i * d, count: d))
    }

    func dot(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

    func cosine(_ a: [Float], _ b: [Float]) -> Float { dot(a, b) / max(1e-12, (dot(a, a) * dot(b, b)).squareRoot()) }

    func candidates(_ e: [Float], _ cls: Int?, _ k: Int) -> [Int] {
        e.withUnsafeBufferPointer { bank.candidates($0.baseAddress!, classIndex: cls, topK: k) }
    }

    func testCandidatesAreTheClassesNearestFirst() {
        for i in [0, 37, 101] {
            let e = row(bank.embeddings, i), cls = bank.classIndex[i]
            let members = (0..<bank.count).filter { bank.classIndex[$0] == cls }
            XCTAssertGreaterThanOrEqual(members.count, 3)
            for k in [1, 2, members.count + 5] {
                let top = candidates(e, cls, k)
                XCTAssertEqual(top.count, min(k, members.count), "top-\(k) of class \(cls)")
                XCTAssertTrue(top.allSatisfy { bank.classIndex[$0] == cls }, "only class \(cls): \(top)")
                let sims = top.map { dot(row(bank.embeddings, $0), e) }
                XCTAssertEqual(sims, sims.sorted(by: >), "most similar first")
                let best = members.map { dot(row(bank.embeddings, $0), e) }.max()!
                XCTAssertEqual(sims.first ?? -2, best)
            }
        }
        // A class without exemplars (or none given): the nearest of all entries.
        let e = row(bank.embeddings, 5)
        let all = candidates(e, nil, 4)
        XCTAssertEqual(all.count, 4)
        XCTAssertEqual(dot(row(bank.embeddings, all[0]), e), (0..<bank.count).map { dot(row(bank.embeddings, $0), e) }.max()!)
        XCTAssertEqual(candidates(e, 9999, 4), all)
    }

    func testExemplarIsKeptWhileAmongTheTopK() throws {
        let slots = ImageSlots(model: model, bank: bank, mode: .retrieval, seed: 11)
        // Two entries of one class whose embeddings differ by more than the drift threshold.
        var pair: (Int, Int)?
        for i in 0..<bank.count where pair == nil {
            for j in (i + 1)..<bank.count where pair == nil && bank.classIndex[j] == bank.classIndex[i] {
                if Double(cosine(row(bank.embeddings, i), row(bank.embeddings, j))) < slots.driftCosine - 0.05 { pair = (i, j) }
            }
        }
        let (a, b) = try XCTUnwrap(pair)
        let cls = bank.classIndex[a]
        var previous: Int?
        var kept = 0
        for cycle in 0..<12 {
            let e = row(bank.embeddings, cycle % 2 == 0 ? a : b)
            slots.update([.init(key: "c", classIndex: cls, score: 0.9, layer: "middle", embedding: e)], time: Double(cycle))
            let ex = try XCTUnwrap(slots.state("c")?.exemplar)
            let top = candidates(e, cls, slots.retrievalTopK)
            XCTAssertTrue(top.contains(ex))
            if let previous, top.contains(previous) {
                XCTAssertEqual(ex, previous, "cycle \(cycle): the exemplar is still among the top-k, so it is kept")
                kept += 1
            }
            previous = ex
        }
        XCTAssertGreaterThan(kept, 3, "the test must exercise the keep rule")
    }

    func testNewSlotsDrawAcrossTheTopK() throws {
        let slots = ImageSlots(model: model, bank: bank, mode: .retrieval, seed: 5)
        let e = row(bank.embeddings, 0), cls = bank.classIndex[0]
        let top = candidates(e, cls, slots.retrievalTopK)
        XCTAssertEqual(top.count, 3)
        var drawn: [Int] = []
        for k in 0..<24 {
            slots.update([.init(key: "k\(k)", classIndex: cls, score: 0.5, layer: "middle", embedding: e)], time: 0)
            drawn.append(try XCTUnwrap(slots.state("k\(k)")?.exemplar))
        }
        XCTAssertTrue(drawn.allSatisfy(top.contains))
        XCTAssertEqual(Set(drawn), Set(top), "24 draws, uniform over 3: each exemplar comes up")
    }

    func testInactiveSlotsAreNotRefinedAndAreDroppedAfterKeepInactive() throws {
        let slots = ImageSlots(model: model, bank: bank, mode: .pure, seed: 2)
        let ea = row(bank.embeddings, 0), eb = row(bank.embeddings, 50)
        let a = ImageSlots.Request(key: "a", classIndex: 0, score: 0.9, layer: "sky", embedding: ea)
        let b = ImageSlots.Request(key: "b", classIndex: 1, score: 0.8, layer: "ground", embedding: eb)
        slots.update([a, b], time: 0)
        XCTAssertEqual(slots.advance(), 2)
        slots.update([a], time: 0.5)
        XCTAssertEqual(slots.snapshot("b")?.active, false)
        XCTAssertEqual(slots.advance(), 1, "only the active slot is refined")
        XCTAssertEqual(slots.snapshot("b")?.step, 1)
        XCTAssertEqual(slots.snapshot("a")?.step, 2)
        slots.update([a], time: 1.4)
        XCTAssertNotNil(slots.snapshot("b"), "kept (fading) for keepInactive = \(slots.keepInactive) s")
        slots.update([a], time: 1.6)
        XCTAssertNil(slots.snapshot("b"), "dropped after keepInactive")
        XCTAssertEqual(slots.snapshots.map(\.key), ["a"])
    }

    func testNewestSlotIsRefinedFirstUnderAShortBudget() {
        let slots = ImageSlots(model: model, bank: bank, mode: .pure, seed: 3)
        let a = ImageSlots.Request(key: "a", classIndex: 0, score: 0.9, layer: "sky", embedding: row(bank.embeddings, 0))
        let b = ImageSlots.Request(key: "b", classIndex: 1, score: 0.8, layer: "ground", embedding: row(bank.embeddings, 50))
        slots.update([a], time: 0)
        XCTAssertEqual(slots.advance(budget: 1), 1)
        slots.update([a, b], time: 1)
        XCTAssertEqual(slots.advance(budget: 1), 1)
        XCTAssertEqual(slots.snapshot("b")?.step, 1, "the class that just appeared gets the frame's step")
        XCTAssertEqual(slots.snapshot("a")?.step, 1)
        XCTAssertNotNil(slots.snapshot("b")?.image, "and its first preview")
    }

    func testPureModeDriftRenoisesTheEstimate() throws {
        let slots = ImageSlots(model: model, bank: bank, mode: .pure, seed: 4)
        let (ea, eb) = (row(bank.embeddings, 0), row(bank.embeddings, 50))
        XCTAssertLessThan(Double(cosine(ea, eb)), slots.driftCosine)
        slots.update([.init(key: "p", classIndex: 0, score: 0.9, layer: "middle", embedding: ea)], time: 0)
        while slots.advance() > 0 {}
        let before = try XCTUnwrap(slots.state("p")).estimate
        slots.update([.init(key: "p", classIndex: 0, score: 0.9, layer: "middle", embedding: eb)], time: 1)
        let start = try XCTUnwrap(slots.state("p")).estimate
        XCTAssertEqual(slots.snapshot("p")?.step, 0, "a drift starts a new refinement")
        // start = (1 - s) * before + s * noise with s = renoiseStrength: the previous picture
        // still shows; a fresh start (pure noise) would be unrelated to it.
        let c = cosine(start, before)
        print("cosine of the re-noised start to the previous estimate: \(c) (renoise strength \(slots.renoiseStrength))")
        XCTAssertGreaterThan(c, 0.4)
    }

    func testDecodedImageIsTheDecoderOutputInRGBOrder() {
        var image = GeneratedImage(width: 0, height: 0, rgb: [])
        let z = row(bank.latents, 3)
        z.withUnsafeBufferPointer { model.decode($0.baseAddress!, into: &image) }
        let out = model.decoder.output  // [3, h, w], still holding this decode
        let plane = image.width * image.height
        XCTAssertEqual(model.decoder.outputShape, [3, image.height, image.width])
        var mismatches = 0
        for p in 0..<plane {
            for c in 0..<3 {
                let want = UInt8(max(0, min(255, out[c * plane + p] * 255 + 0.5)))
                if image.rgb[p * 3 + c] != want { mismatches += 1 }
            }
        }
        XCTAssertEqual(mismatches, 0)
        // The picture is in colour (a channel swap would show).
        let g = stride(from: 1, to: image.rgb.count, by: 3).map { Int(image.rgb[$0]) }
        let b = stride(from: 2, to: image.rgb.count, by: 3).map { Int(image.rgb[$0]) }
        XCTAssertNotEqual(g, b)
    }
}
