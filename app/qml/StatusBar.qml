import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope

// The line at the bottom: an error when there is one (dismissable), else what just happened.
Rectangle {
    id: bar

    readonly property bool showsError: AppController.errorText.length > 0

    implicitHeight: Theme.statusHeight
    color: showsError ? Theme.errorSoft : Theme.panelHeader

    Rectangle {
        anchors.left: parent.left
        anchors.right: parent.right
        anchors.top: parent.top
        height: 1
        color: Theme.border
    }

    RowLayout {
        anchors.fill: parent
        anchors.leftMargin: Theme.padding
        anchors.rightMargin: Theme.padding
        spacing: Theme.spacing

        Label {
            visible: bar.showsError
            text: "⚠"
            color: Theme.error
            font.bold: true
        }
        Label {
            objectName: "statusLabel"
            Layout.fillWidth: true
            text: bar.showsError ? AppController.errorText : AppController.statusText
            textFormat: Text.PlainText
            color: bar.showsError ? Theme.error : Theme.textMuted
            font.pointSize: Theme.smallSize
            elide: Text.ElideRight
            ToolTip.visible: bar.showsError && statusHover.hovered
            ToolTip.text: AppController.errorText
            HoverHandler {
                id: statusHover
            }
        }
        ToolButton {
            visible: bar.showsError
            text: "✕"
            implicitHeight: Theme.statusHeight - 4
            implicitWidth: implicitHeight
            onClicked: AppController.clearError()
            ToolTip.visible: hovered
            ToolTip.text: "Dismiss"
        }
        Label {
            visible: AppController.busy
            text: "working…"
            color: Theme.accent
            font.pointSize: Theme.smallSize
        }
        Label {
            text: "device: " + AppController.device
            color: Theme.textFaint
            font.pointSize: Theme.smallSize
        }
    }
}
