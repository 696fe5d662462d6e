// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "vq",
    products: [
        .executable(name: "vq", targets: ["vq"]),
    ],
    dependencies: [],
    targets: [
        .target(name: "CVQSupport"),
        .target(name: "VQEngine", dependencies: ["CVQSupport"], swiftSettings: strict),
        .executableTarget(name: "vq", dependencies: ["VQEngine"], swiftSettings: strict),
        // Fuzz targets (see the file's header for the -sanitize=fuzzer build); a replayer otherwise.
        .executableTarget(name: "vq-fuzz", dependencies: ["VQEngine"], swiftSettings: strict + [.unsafeFlags(["-parse-as-library"])]),
        .testTarget(name: "VQEngineTests", dependencies: ["VQEngine"], swiftSettings: strict),
        .testTarget(name: "vqTests", dependencies: ["vq", "VQEngine"], swiftSettings: strict),
    ]
)
