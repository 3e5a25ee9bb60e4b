import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope

// The bar across the top: which model is open, its shape and device, and the Open button.
Rectangle {
    id: header

    signal openRequested()

    implicitHeight: Theme.headerHeight
    color: Theme.panel

    component Fact: ColumnLayout {
        property string label
        property string value
        spacing: 0
        Label {
            text: parent.label
            color: Theme.textFaint
            font.pointSize: Theme.smallSize - 1
            font.capitalization: Font.AllUppercase
        }
        Label {
            text: parent.value
            color: Theme.text
            font.family: Theme.monoFamily
            font.pointSize: Theme.baseSize
        }
    }

    RowLayout {
        anchors.fill: parent
        anchors.leftMargin: Theme.padding + 4
        anchors.rightMargin: Theme.padding
        spacing: Theme.padding + 4

        Label {
            text: "Circuitscope"
            font.pointSize: Theme.titleSize
            font.bold: true
            color: Theme.accent
        }
        Rectangle {
            Layout.preferredWidth: 1
            Layout.fillHeight: true
            Layout.topMargin: 12
            Layout.bottomMargin: 12
            color: Theme.divider
        }

        // The open model, or a hint when there is none.
        ColumnLayout {
            spacing: 0
            Layout.maximumWidth: 360
            Label {
                objectName: "modelNameLabel"
                Layout.fillWidth: true
                text: AppController.hasModel ? AppController.modelName
                                             : (AppController.loading ? "Opening…" : "No model open")
                font.pointSize: Theme.baseSize + 2
                font.bold: AppController.hasModel
                color: AppController.hasModel ? Theme.text : Theme.textMuted
                elide: Text.ElideMiddle
                textFormat: Text.PlainText
            }
            Label {
                Layout.fillWidth: true
                visible: AppController.hasModel
                text: AppController.modelFolder
                textFormat: Text.PlainText
                color: Theme.textFaint
                font.pointSize: Theme.smallSize - 1
                elide: Text.ElideLeft
            }
        }
        Rectangle {
            visible: AppController.hasModel
            implicitWidth: familyLabel.implicitWidth + 14
            implicitHeight: familyLabel.implicitHeight + 6
            radius: height / 2
            color: Theme.accentSoft
            Label {
                id: familyLabel
                anchors.centerIn: parent
                text: AppController.modelFamily
                color: Theme.accent
                font.pointSize: Theme.smallSize
                font.bold: true
            }
        }
        Fact {
            visible: AppController.hasModel
            label: "layers"
            value: AppController.modelLayers
        }
        Fact {
            visible: AppController.hasModel
            label: "d_model"
            value: AppController.modelDModel
        }
        Fact {
            visible: AppController.hasModel
            label: "vocab"
            value: AppController.modelVocabSize
        }
        Fact {
            visible: AppController.hasModel
            label: "device"
            value: AppController.modelDevice
        }

        Item {
            Layout.fillWidth: true
        }

        BusyIndicator {
            Layout.preferredWidth: 26
            Layout.preferredHeight: 26
            running: AppController.busy
            visible: running
        }
        Button {
            objectName: "openModelButton"
            text: "Open model…"
            highlighted: !AppController.hasModel
            onClicked: header.openRequested()
            ToolTip.visible: hovered
            ToolTip.delay: 600
            ToolTip.text: "Open a Hugging Face model folder (config.json, safetensors, tokenizer.json)"
        }
    }

    Rectangle {
        anchors.left: parent.left
        anchors.right: parent.right
        anchors.bottom: parent.bottom
        height: 1
        color: Theme.border
    }
}
