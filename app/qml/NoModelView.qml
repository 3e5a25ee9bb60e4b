import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope

// What the main area shows while no model is open: why, and how to open one.
Rectangle {
    id: view

    signal openRequested()

    color: Theme.panel
    border.color: Theme.border
    radius: Theme.radius

    ColumnLayout {
        anchors.centerIn: parent
        width: Math.min(parent.width - 2 * Theme.padding, 560)
        spacing: Theme.padding

        BusyIndicator {
            Layout.alignment: Qt.AlignHCenter
            running: AppController.loading
            visible: running
        }
        Label {
            Layout.fillWidth: true
            horizontalAlignment: Text.AlignHCenter
            text: AppController.loading ? "Opening the model…" : "No model open"
            font.pointSize: Theme.titleSize + 2
            font.bold: true
            color: Theme.text
        }
        Label {
            objectName: "noModelMessage"
            Layout.fillWidth: true
            horizontalAlignment: Text.AlignHCenter
            wrapMode: Text.WordWrap
            textFormat: Text.PlainText
            visible: !AppController.loading
            text: AppController.errorText.length > 0
                  ? AppController.errorText
                  : "Open a Hugging Face model folder: config.json, model.safetensors and tokenizer.json."
            color: AppController.errorText.length > 0 ? Theme.error : Theme.textMuted
        }
        Button {
            Layout.alignment: Qt.AlignHCenter
            Layout.topMargin: Theme.spacing
            visible: !AppController.loading
            text: "Open model…"
            highlighted: true
            onClicked: view.openRequested()
        }
        Label {
            Layout.fillWidth: true
            horizontalAlignment: Text.AlignHCenter
            wrapMode: Text.WordWrap
            visible: !AppController.loading
            text: "Supported families: Llama, Qwen 3, Gemma 2, GPT-2. Or start with --model FOLDER."
            color: Theme.textFaint
            font.pointSize: Theme.smallSize
        }
    }
}
