import QtQuick
import QtQuick.Controls

// One stored example: its tokens as chips whose background follows the token's activation
// (normalized to the feature's largest activation), the token that fired outlined.
Item {
    id: example

    required property InspectorColors colors
    required property var tokens // strings, whitespace made visible
    required property var activations // [0, 1] per token
    required property int peakPosition
    required property real peakActivation

    implicitHeight: flow.implicitHeight + 8

    Flow {
        id: flow
        anchors.left: parent.left
        anchors.right: parent.right
        anchors.leftMargin: 2
        anchors.rightMargin: 2
        anchors.verticalCenter: parent.verticalCenter
        spacing: 1

        Repeater {
            model: example.tokens.length
            delegate: Rectangle {
                id: chip
                required property int index
                readonly property real level: example.activations[index]
                readonly property bool isPeak: index === example.peakPosition
                implicitWidth: chipText.implicitWidth + 4
                implicitHeight: chipText.implicitHeight + 2
                width: implicitWidth
                height: implicitHeight
                radius: 2
                color: level > 0 ? Qt.rgba(example.colors.activationColor.r, example.colors.activationColor.g,
                                           example.colors.activationColor.b, 0.12 + 0.78 * level)
                                 : "transparent"
                border.width: isPeak ? 1 : 0
                border.color: example.colors.peak

                Text {
                    id: chipText
                    anchors.centerIn: parent
                    text: example.tokens[chip.index]
                    textFormat: Text.PlainText
                    font.family: example.colors.monoFamily
                    font.pointSize: example.colors.smallSize
                    color: example.colors.text
                }
            }
        }
    }
}
