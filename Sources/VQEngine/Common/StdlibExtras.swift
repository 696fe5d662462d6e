// Small additions to standard types, used across the engine.

import Foundation

extension Array {
    /// The element at `index`, or nil past the ends.
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}

extension CharacterSet {
    /// RFC 3986's unreserved characters, ASCII only: what a query value may hold unescaped.
    package static let urlUnreservedASCII = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
}
