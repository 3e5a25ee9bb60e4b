import QtQuick

// The inspector's colours and sizes. The defaults follow the explorer's light Theme; `dark`
// switches every default to a dark set, and any colour can be bound to the app's theme
// instead (InspectorColors { panel: Theme.panel; text: Theme.text }).
QtObject {
    property bool dark: false

    // Surfaces
    property color panel: dark ? "#1e2128" : "#ffffff"
    property color panelHeader: dark ? "#252932" : "#fafbfc"
    property color border: dark ? "#3a3f4b" : "#d8dce3"
    property color divider: dark ? "#30343e" : "#e7e9ee"
    property color hover: dark ? "#2b3140" : "#f1f5fd"

    // Text
    property color text: dark ? "#e3e6ed" : "#1c2230"
    property color textMuted: dark ? "#a3aab8" : "#677084"
    property color textFaint: dark ? "#6f7685" : "#9aa1b1"

    // Accents
    property color accent: dark ? "#6b9cf0" : "#2f6fde"
    property color bar: dark ? "#5a8de6" : "#4a82e4"
    property color barTrack: dark ? "#2a2e37" : "#eef1f6"
    // Edge signs: excitatory and inhibitory (also the promoted / suppressed output tokens).
    property color positive: dark ? "#5aa7e8" : "#2f6fde"
    property color negative: dark ? "#e8795a" : "#c8472b"
    // Token chips in examples: the background blends towards `activationColor` with the
    // token's activation; the token that fired is outlined with `peak`.
    property color chip: dark ? "#2a2e37" : "#eef1f6"
    property color chipBorder: dark ? "#3d4350" : "#cdd3dd"
    property color activationColor: dark ? "#e89a3c" : "#f08c00"
    property color peak: dark ? "#ffd08a" : "#a84f00"
    // Node kinds (the header badge and the dot before each connection).
    property color featureKind: dark ? "#8fb4f5" : "#3d6fd1"
    property color errorKind: dark ? "#9a9fab" : "#7a8090"
    property color embeddingKind: dark ? "#7fd1a4" : "#1f7a4d"
    property color logitKind: dark ? "#e3a5e8" : "#9b3fa6"

    // Sizes and fonts
    property int spacing: 8
    property int padding: 10
    property int radius: 4
    property int rowHeight: 24
    property string monoFamily: "monospace"
    property int baseSize: 10
    property int smallSize: 9
    property int titleSize: 12

    function kindColor(kind) {
        switch (kind) {
        case "feature": return featureKind
        case "neuron": return featureKind
        case "unit": return featureKind
        case "error": return errorKind
        case "other units": return errorKind
        case "embedding": return embeddingKind
        case "logit": return logitKind
        }
        return textMuted
    }
    function formatNumber(value, digits) {
        if (value === undefined || value === null || isNaN(value))
            return "–"
        return Number(value).toPrecision(digits === undefined ? 3 : digits)
    }
}
