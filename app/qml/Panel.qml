import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope

// A titled card. Children go into the body; headerItems sit right of the title.
Rectangle {
    id: panel

    property string title
    property string subtitle
    default property alias content: body.data
    property alias headerItems: extras.data

    color: Theme.panel
    border.color: Theme.border
    radius: Theme.radius

    ColumnLayout {
        anchors.fill: parent
        anchors.margins: 1
        spacing: 0

        Rectangle {
            Layout.fillWidth: true
            Layout.preferredHeight: Theme.panelHeaderHeight
            color: Theme.panelHeader
            radius: Theme.radius

            RowLayout {
                anchors.fill: parent
                anchors.leftMargin: Theme.padding
                anchors.rightMargin: Theme.spacing
                spacing: Theme.spacing

                Label {
                    text: panel.title
                    font.bold: true
                    font.pointSize: Theme.baseSize + 1
                    color: Theme.text
                }
                Label {
                    Layout.fillWidth: true
                    text: panel.subtitle
                    color: Theme.textMuted
                    font.pointSize: Theme.smallSize
                    elide: Text.ElideRight
                }
                RowLayout {
                    id: extras
                    spacing: Theme.spacing
                }
            }
        }
        Rectangle {
            Layout.fillWidth: true
            Layout.preferredHeight: 1
            color: Theme.divider
        }
        Item {
            id: body
            Layout.fillWidth: true
            Layout.fillHeight: true
            clip: true
        }
    }
}
