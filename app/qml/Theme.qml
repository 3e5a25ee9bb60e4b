pragma Singleton
import QtQuick

// Colours, sizes and fonts shared by every view: one place to restyle the explorer.
QtObject {
    // Dark surfaces and text; the controller's settings switch it (Settings: theme).
    property bool dark: false

    // Surfaces
    readonly property color window: dark ? "#1d2027" : "#f3f4f7"
    readonly property color panel: dark ? "#262a33" : "#ffffff"
    readonly property color panelHeader: dark ? "#2c313b" : "#fafbfc"
    readonly property color border: dark ? "#3b4150" : "#d8dce3"
    readonly property color divider: dark ? "#343a47" : "#e7e9ee"
    readonly property color hover: dark ? "#313848" : "#f1f5fd"

    // Text
    readonly property color text: dark ? "#e4e7ee" : "#1c2230"
    readonly property color textMuted: dark ? "#a3abbc" : "#677084"
    readonly property color textFaint: dark ? "#737c8f" : "#9aa1b1"

    // Accents
    readonly property color accent: dark ? "#6b9cf0" : "#2f6fde"
    readonly property color accentSoft: dark ? "#2d3a55" : "#e3ecfc"
    readonly property color bar: dark ? "#5b8ee8" : "#4a82e4"
    readonly property color barTrack: dark ? "#343a47" : "#eef1f6"
    readonly property color continuation: dark ? "#5cc28e" : "#1f7a4d"
    readonly property color continuationSoft: dark ? "#263b31" : "#e3f4ea"
    readonly property color error: dark ? "#f2807a" : "#b3261e"
    readonly property color errorSoft: dark ? "#4a2a2a" : "#fcebea"

    // Token chips
    readonly property color chip: dark ? "#323845" : "#eef1f6"
    readonly property color chipBorder: dark ? "#485063" : "#cdd3dd"
    readonly property color chipHover: dark ? "#3a4660" : "#dfe8fa"

    // Graph canvas
    readonly property color canvas: dark ? "#181b21" : "#fbfcfd"
    readonly property color positive: dark ? "#5da5e8" : "#1f77b4"
    readonly property color negative: dark ? "#ef6a6a" : "#d62728"
    readonly property color pinned: "#2ca02c"
    readonly property color supernode: dark ? "#4b3f63" : "#ece4f7"

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
