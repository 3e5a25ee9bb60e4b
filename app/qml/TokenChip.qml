import QtQuick
import QtQuick.Controls
import Circuitscope

// One prompt token: its text with whitespace made visible; hover shows position and id.
Rectangle {
    id: chip

    required property int position
    required property var tokenId
    required property string text

    implicitWidth: Math.max(label.implicitWidth + 12, 22)
    implicitHeight: label.implicitHeight + 8
    radius: 3
    color: hover.hovered ? Theme.chipHover : Theme.chip
    border.color: Theme.chipBorder

    Label {
        id: label
        anchors.centerIn: parent
        text: chip.text
        textFormat: Text.PlainText
        font.family: Theme.monoFamily
        font.pointSize: Theme.baseSize
        color: Theme.text
    }

    HoverHandler {
        id: hover
    }
    ToolTip.visible: hover.hovered
    ToolTip.delay: 300
    ToolTip.text: "position " + chip.position + " · token id " + chip.tokenId
}
