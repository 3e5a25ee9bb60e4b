import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope

// A short greedy continuation of the prompt: the prompt in grey, what the model added in green.
Panel {
    id: panel

    title: "Continuation"
    subtitle: "greedy"

    headerItems: [
        SpinBox {
            id: lengthBox
            objectName: "generateLengthSpinBox"
            from: 1
            to: 256
            value: 24
            editable: true
            implicitWidth: 96
            ToolTip.visible: hovered
            ToolTip.delay: 600
            ToolTip.text: "Tokens to generate"
        },
        Button {
            objectName: "generateButton"
            text: "Generate"
            enabled: AppController.hasModel
            onClicked: AppController.generate(lengthBox.value)
        }
    ]

    ScrollView {
        anchors.fill: parent
        anchors.margins: Theme.padding

        TextArea {
            objectName: "generationText"
            readOnly: true
            selectByMouse: true
            wrapMode: TextEdit.Wrap
            textFormat: TextEdit.RichText
            font.pointSize: Theme.baseSize + 1
            background: null
            text: AppController.generation.length > 0
                  ? "<div style='white-space: pre-wrap'><span style='color:" + Theme.textMuted + "'>"
                    + panel.htmlEscape(AppController.generationPrompt) + "</span><span style='color:"
                    + Theme.continuation + "; background-color:" + Theme.continuationSoft + "'>"
                    + panel.htmlEscape(AppController.generation) + "</span></div>"
                  : ""
            placeholderText: AppController.hasModel ? "Press Generate to continue the prompt" : ""
        }
    }

    function htmlEscape(s) {
        return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    }
}
