import QtQuick
import QtQuick.Controls

// One stored example as running text: each token's background follows its activation
// (normalized to the feature's largest activation), the token that fired bold and underlined;
// "×3" when the same text was stored several times.
Item {
    id: example

    required property InspectorColors colors
    required property var texts // each token's text, spaces kept
    required property var activations // [0, 1] per token
    required property int peakPosition
    required property real peakActivation
    required property int repeats

    implicitHeight: Math.max(line.implicitHeight, repeatLabel.implicitHeight) + 8

    function escaped(text) {
        return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    }
    // The example as rich text: one span per token, tinted over the panel's colour.
    function html() {
        let out = "<span style=\"white-space:pre-wrap\">"
        const tint = example.colors.activationColor
        for (let i = 0; i < example.texts.length; ++i) {
            const level = example.activations[i]
            let style = ""
            if (level > 0) {
                const c = Qt.tint(example.colors.panel, Qt.rgba(tint.r, tint.g, tint.b, 0.12 + 0.78 * level))
                style = "background-color:" + c.toString() + ";"
            }
            let text = escaped(example.texts[i])
            if (i === example.peakPosition)
                text = "<b><u>" + text + "</u></b>"
            out += style !== "" ? "<span style=\"" + style + "\">" + text + "</span>" : text
        }
        return out + "</span>"
    }

    Text {
        id: line
        objectName: "exampleText"
        anchors.left: parent.left
        anchors.right: repeatLabel.left
        anchors.leftMargin: 2
        anchors.rightMargin: 4
        anchors.verticalCenter: parent.verticalCenter
        textFormat: Text.RichText
        wrapMode: Text.Wrap
        text: example.html()
        font.pointSize: example.colors.smallSize
        color: example.colors.text
    }
    Label {
        id: repeatLabel
        anchors.right: parent.right
        anchors.verticalCenter: parent.verticalCenter
        visible: example.repeats > 1
        width: visible ? implicitWidth : 0
        text: "×" + example.repeats
        font.pointSize: example.colors.smallSize
        color: example.colors.textMuted
        ToolTip.visible: visible && repeatHover.hovered
        ToolTip.text: "The corpus holds this text " + example.repeats + " times among the stored examples"
        HoverHandler {
            id: repeatHover
        }
    }
}
