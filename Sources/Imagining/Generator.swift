import Foundation
import NeuralNet

/// An RGB image produced by the generator: [height][width][3] bytes.
public struct GeneratedImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var rgb: [UInt8]
    public init(width: Int, height: Int, rgb: [UInt8]) { self.width = width; self.height = height; self.rgb = rgb }
}

/// Errors loading the generator or exemplar bank; descriptions name the file.
public struct ImaginingError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// The few-step generator student and its decoder, read from Assets/models/generator.safetensors
/// (training/generator/export.py). Mirrors training/generator/sample.py:
///
/// - convention: x_t = (1 - t) * noise + t * data; the denoiser returns the velocity (data - noise);
/// - one step from t to t_next: v = denoiser(x, t, emb); x_next = x + (t_next - t) v;
///   the data estimate x1_hat = x + (1 - t) v, decoded to the preview image;
/// - schedule: t_k = t0 + (1 - t0) k / n; fresh start t0 = 0, n = steps; a start from a latent
///   z at strength s: t0 = 1 - s, x = t0 z + (1 - t0) noise, n = max(1, ceil(steps s)).
///
/// Not thread-safe: one instance per rendering thread.
public final class GeneratorModel: @unchecked Sendable {
    /// Live defaults chosen by the generator's evaluation (metadata "defaults").
    public struct Defaults: Decodable, Sendable {
        public var mode: String
        public var steps: Int
        public var retrieval_strength: Double
        public var retrieval_top_k: Int
        public var renoise_strength: Double
        public var drift_cosine: Double
    }

    public let file: SafeTensorsFile
    public let denoiser: ProgramNetwork
    public let decoder: ProgramNetwork
    public let latentShape: [Int]      // [C, 16, 16]
    public let embeddingSize: Int
    public let defaults: Defaults
    public let classes: [String]
    public var latentCount: Int { latentShape.reduce(1, *) }
    /// Float operations of one step (denoiser + decoder).
    public var flopsPerStep: Int { denoiser.flops + decoder.flops }

    public init(path: String) throws {
        do {
            file = try SafeTensorsFile(path: path)
            guard file.metadata["format"] == "avgas-generator/1" else {
                throw ImaginingError("'\(path)' is not an avgas generator (format '\(file.metadata["format"] ?? "none")'); run make train-generator")
            }
            latentShape = try file.metadataJSON("latent_shape", as: [Int].self)
            let dIn = try file.metadataJSON("denoiser.inputs", as: [String: [Int]].self)
            let cIn = try file.metadataJSON("decoder.inputs", as: [String: [Int]].self)
            denoiser = try ProgramNetwork(file: file, net: "denoiser", inputs: dIn.mapValues { $0.isEmpty ? [1] : $0 })
            decoder = try ProgramNetwork(file: file, net: "decoder", inputs: cIn)
            defaults = try file.metadataJSON("defaults", as: Defaults.self)
            classes = try file.metadataJSON("classes", as: [String].self)
            guard let emb = dIn["emb"], emb.count == 1, emb[0] > 0 else {
                throw ImaginingError("'\(path)': the denoiser's 'emb' input must be one positive length, got \(dIn["emb"] ?? [])")
            }
            embeddingSize = emb[0]
            guard dIn["x"] == latentShape, cIn["z"] == latentShape, decoder.outputShape.count == 3, decoder.outputShape[0] == 3 else {
                throw ImaginingError("'\(path)': denoiser/decoder shapes do not match latent_shape \(latentShape)")
            }
            // The sampling defaults size schedules and loops: keep them in their meaningful ranges.
            let d = defaults
            func unit(_ v: Double) -> Bool { v > 0 && v <= 1 }
            guard (1...64).contains(d.steps), (1...1024).contains(d.retrieval_top_k), unit(d.retrieval_strength),
                  unit(d.renoise_strength), d.drift_cosine >= -1 && d.drift_cosine <= 1 else {
                throw ImaginingError("'\(path)': sampling defaults out of range (steps 1-64, top-k 1-1024, strengths in (0, 1], "
                                     + "drift cosine in [-1, 1]): \(d)")
            }
        } catch let e as ImaginingError { throw e } catch {
            throw ImaginingError("\(error)")
        }
    }

    /// One student step: x_next, x1_hat for the state x at time t.
    /// `x`, `emb` are read; `xNext`, `x1` written ([latentCount] each).
    public func step(x: UnsafePointer<Float>, t: Float, tNext: Float, emb: UnsafePointer<Float>,
                     xNext: UnsafeMutablePointer<Float>, x1: UnsafeMutablePointer<Float>) {
        let n = latentCount
        denoiser.input("x").baseAddress!.update(from: x, count: n)
        denoiser.input("t")[0] = t
        denoiser.input("emb").baseAddress!.update(from: emb, count: embeddingSize)
        denoiser.forward()
        let v = denoiser.output
        for i in 0..<n {
            xNext[i] = x[i] + (tNext - t) * v[i]
            x1[i] = x[i] + (1 - t) * v[i]
        }
    }

    /// Decodes a (normalised) latent to an RGB image.
    public func decode(_ z: UnsafePointer<Float>, into image: inout GeneratedImage) {
        decoder.input("z").baseAddress!.update(from: z, count: latentCount)
        decoder.forward()
        let s = decoder.outputShape
        let (h, w) = (s[1], s[2])
        if image.width != w || image.height != h || image.rgb.count != w * h * 3 {
            image = GeneratedImage(width: w, height: h, rgb: [UInt8](repeating: 0, count: w * h * 3))
        }
        let out = decoder.output.baseAddress!  // [3, h, w]
        let plane = h * w
        image.rgb.withUnsafeMutableBufferPointer { dst in
            let d = dst.baseAddress!  // [h, w, 3]
            for p in 0..<plane {
                let r = max(0, min(255, out[p] * 255 + 0.5)), g = max(0, min(255, out[plane + p] * 255 + 0.5))
                let b = max(0, min(255, out[2 * plane + p] * 255 + 0.5))
                d[p * 3] = UInt8(r); d[p * 3 + 1] = UInt8(g); d[p * 3 + 2] = UInt8(b)
            }
        }
    }
}

/// The bank of real exemplar latents (Assets/models/exemplars.safetensors) for the
/// retrieval-augmented mode: among entries of the slot's class (all entries if the class has
/// none), the top-k by cosine similarity to the embedding (ImageSlots draws one uniformly).
public final class ExemplarBank: @unchecked Sendable {
    public let latents: FloatTensor      // [N, C, 16, 16]
    public let embeddings: FloatTensor   // [N, 128]
    public let classIndex: [Int]         // [N]
    public var count: Int { classIndex.count }

    public init(path: String) throws {
        do {
            let f = try SafeTensorsFile(path: path)
            guard f.metadata["format"] == "avgas-exemplars/1" else {
                throw ImaginingError("'\(path)' is not an exemplar bank (format '\(f.metadata["format"] ?? "none")')")
            }
            latents = try f.floats("latents")
            embeddings = try f.floats("embeddings")
            let info = try f.info("class_index")
            guard latents.shape.count == 4, latents.shape[0] >= 1, embeddings.shape.count == 2, embeddings.shape[1] >= 1,
                  info.dtype == .i32, info.shape == [latents.shape[0]], embeddings.shape[0] == latents.shape[0] else {
                throw ImaginingError("'\(path)': latents [N, C, H, W], embeddings [N, D] and class_index [N] (N >= 1) do not agree: "
                                     + "\(latents.shape), \(embeddings.shape), \(info.shape)")
            }
            let raw = try f.bytes("class_index")
            classIndex = (0..<info.shape[0]).map { Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self))) }
        } catch let e as ImaginingError { throw e } catch {
            throw ImaginingError("\(error)")
        }
    }

    /// Throws unless the bank's latents and embeddings have the sizes `model` draws and reads.
    public func check(fits model: GeneratorModel, path: String) throws {
        guard Array(latents.shape.dropFirst()) == model.latentShape, embeddings.shape[1] == model.embeddingSize else {
            throw ImaginingError("'\(path)' holds latents \(Array(latents.shape.dropFirst())) and \(embeddings.shape[1])-d embeddings, "
                                 + "but the generator draws \(model.latentShape) from \(model.embeddingSize)-d embeddings; rebuild both (make train-generator)")
        }
    }

    /// The `topK` exemplars most similar to `emb` (unit norm) among those of class `cls` (all
    /// entries when the class has none), most similar first.
    public func candidates(_ emb: UnsafePointer<Float>, classIndex cls: Int?, topK: Int) -> [Int] {
        let d = embeddings.shape[1]
        var cand = (0..<count).filter { cls != nil && classIndex[$0] == cls }
        if cand.isEmpty { cand = Array(0..<count) }
        let sims = cand.map { i -> (Int, Float) in
            var s: Float = 0
            let e = embeddings.pointer + i * d
            for k in 0..<d { s += e[k] * emb[k] }
            return (i, s)
        }.sorted { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }
        return sims.prefix(max(1, topK)).map(\.0)
    }

    public func latent(_ i: Int) -> UnsafePointer<Float> {
        latents.pointer + i * (latents.count / latents.shape[0])
    }
}
