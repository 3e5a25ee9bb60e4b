pragma Singleton
import QtQuick

// Colours, sizes and fonts shared by every view: one place to restyle the explorer.
QtObject {
    // Surfaces
    readonly property color window: "#f3f4f7"
    readonly property color panel: "#ffffff"
    readonly property color panelHeader: "#fafbfc"
    readonly property color border: "#d8dce3"
    readonly property color divider: "#e7e9ee"
    readonly property color hover: "#f1f5fd"

    // Text
    readonly property color text: "#1c2230"
    readonly property color textMuted: "#677084"
    readonly property color textFaint: "#9aa1b1"

    // Accents
    readonly property color accent: "#2f6fde"
    readonly property color accentSoft: "#e3ecfc"
    readonly property color bar: "#4a82e4"
    readonly property color barTrack: "#eef1f6"
    readonly property color continuation: "#1f7a4d"
    readonly property color continuationSoft: "#e3f4ea"
    readonly property color error: "#b3261e"
    readonly property color errorSoft: "#fcebea"

    // Token chips
    readonly property color chip: "#eef1f6"
    readonly property color chipBorder: "#cdd3dd"
    readonly property color chipHover: "#dfe8fa"

    // Sizes
    readonly property int spacing: 8
    readonly property int padding: 12
    readonly property int radius: 5
    readonly property int headerHeight: 56
    readonly property int panelHeaderHeight: 38
    readonly property int statusHeight: 28
    readonly property int rowHeight: 28

    // Columns of the next-token table (DistributionRow and its headings).
    readonly property int rankColumnWidth: 32
    readonly property int percentColumnWidth: 64
    readonly property int logitColumnWidth: 72
    function tokenColumnWidth(rowWidth) {
        return Math.round(Math.max(110, Math.min(220, rowWidth * 0.28)))
    }

    // Fonts: token text is monospaced so whitespace markers and widths line up.
    readonly property string monoFamily: "monospace"
    readonly property int baseSize: 10
    readonly property int smallSize: 9
    readonly property int titleSize: 13
}
