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
        .testTarget(name: "VQEngineTests", dependencies: ["VQEngine"], swiftSettings: strict),
        .testTarget(name: "vqTests", dependencies: ["vq", "VQEngine"], swiftSettings: strict),
    ]
)
