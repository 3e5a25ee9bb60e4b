import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope

// The prompt box and, under it, the prompt as the tokenizer splits it. Typing runs the model
// (the controller waits for a pause); Enter runs it at once, Shift+Enter adds a newline.
Panel {
    id: panel

    property alias field: promptField

    title: "Prompt"
    subtitle: "Enter traces the attribution graph · Shift+Enter adds a newline"

    headerItems: [
        ProgressBar {
            objectName: "traceProgress"
            visible: AppController.explorer.tracing
            Layout.preferredWidth: 140
            from: 0
            to: 1
            value: AppController.explorer.traceProgress
        },
        Button {
            objectName: "cancelTraceButton"
            visible: AppController.explorer.tracing
            text: "Cancel"
            onClicked: AppController.explorer.cancelTrace()
        },
        Button {
            objectName: "traceButton"
            text: "Trace"
            highlighted: true
            enabled: AppController.hasModel && AppController.explorer.ready
            onClicked: AppController.tracePrompt()
            ToolTip.visible: hovered
            ToolTip.text: "Trace the attribution graph of this prompt (Enter)"
        }
    ]

    ColumnLayout {
        anchors.fill: parent
        anchors.margins: Theme.padding
        spacing: Theme.spacing

        ScrollView {
            Layout.fillWidth: true
            Layout.fillHeight: true
            Layout.minimumHeight: 52

            TextArea {
                id: promptField
                objectName: "promptField"
                text: AppController.prompt
                placeholderText: "Type a prompt, e.g. “Fact: Michael Jordan plays the sport of”"
                wrapMode: TextEdit.Wrap
                textFormat: TextEdit.PlainText
                selectByMouse: true
                font.pointSize: Theme.baseSize + 2
                focus: true

                onTextChanged: AppController.prompt = text
                Keys.onReturnPressed: event => panel.handleReturn(event)
                Keys.onEnterPressed: event => panel.handleReturn(event)
            }
        }

        RowLayout {
            Layout.fillWidth: true
            spacing: Theme.spacing

            Label {
                Layout.alignment: Qt.AlignTop
                Layout.topMargin: 4
                text: AppController.promptTokens.count === 1 ? "1 token" : AppController.promptTokens.count + " tokens"
                color: Theme.textMuted
                font.pointSize: Theme.smallSize
                Layout.preferredWidth: 64
            }
            ScrollView {
                Layout.fillWidth: true
                Layout.preferredHeight: Math.min(chips.implicitHeight, 86)
                contentWidth: availableWidth
                ScrollBar.horizontal.policy: ScrollBar.AlwaysOff

                Flow {
                    id: chips
                    objectName: "tokenChips"
                    width: parent.width
                    spacing: 4
                    Repeater {
                        model: AppController.promptTokens
                        delegate: TokenChip {}
                    }
                }
            }
        }
    }

    function handleReturn(event) {
        if (event.modifiers & Qt.ShiftModifier) {
            event.accepted = false // the TextArea inserts the newline
            return
        }
        event.accepted = true
        AppController.tracePrompt()
    }
}
