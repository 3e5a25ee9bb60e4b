import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope.Inspector

// Tokens with a value each (a TokenValueModel): the token, a bar as long as |value| relative to
// the list's largest, and the value.
ColumnLayout {
    id: list

    required property InspectorColors colors
    property string title
    property TokenValueModel model: null
    property color barColor: colors.positive

    spacing: 1

    Label {
        text: list.title
        font.bold: true
        font.pointSize: list.colors.smallSize
        color: list.colors.textMuted
    }
    Label {
        visible: list.model === null || list.model.count === 0
        text: "none"
        font.pointSize: list.colors.smallSize
        color: list.colors.textFaint
    }
    Repeater {
        model: list.model
        delegate: Item {
            id: entry
            required property string token
            required property double value
            required property double fraction
            Layout.fillWidth: true
            implicitHeight: 18

            Rectangle {
                anchors.left: parent.left
                anchors.verticalCenter: parent.verticalCenter
                width: entry.width * entry.fraction
                height: parent.height - 4
                radius: 2
                color: list.barColor
                opacity: 0.18
            }
            Text {
                anchors.left: parent.left
                anchors.leftMargin: 3
                anchors.right: valueText.left
                anchors.verticalCenter: parent.verticalCenter
                text: entry.token
                textFormat: Text.PlainText
                elide: Text.ElideRight
                font.family: list.colors.monoFamily
                font.pointSize: list.colors.smallSize
                color: list.colors.text
            }
            Text {
                id: valueText
                anchors.right: parent.right
                anchors.rightMargin: 3
                anchors.verticalCenter: parent.verticalCenter
                text: list.colors.formatNumber(entry.value, 3)
                font.family: list.colors.monoFamily
                font.pointSize: list.colors.smallSize - 1
                color: list.colors.textMuted
            }
        }
    }
}
