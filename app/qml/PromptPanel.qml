import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope

// The prompt box and, under it, the prompt as the tokenizer splits it. Typing runs the model
// (the controller waits for a pause); Enter runs it at once, Shift+Enter adds a newline.
Panel {
    id: panel

    property alias field: promptField
    // Tall enough for the header, three lines of prompt and every row of token chips (up to
    // four rows; more scroll), so chips are never cut off.
    property bool compact: false // a small window: the prompt box gets two lines
    readonly property real wantedHeight: Theme.panelHeaderHeight + 2 + 2 * Theme.padding + (compact ? 40 : 64)
                                         + Theme.spacing + Math.min(chips.implicitHeight, (compact ? 2 : 4) * 26) + 4
                                         + Theme.spacing + basisBar.implicitHeight

    title: "Prompt"
    subtitle: "Enter traces the attribution graph · Shift+Enter adds a newline"

    headerItems: [
        Label {
            objectName: "traceStage"
            visible: AppController.explorer.tracing
            text: AppController.explorer.traceStage + (AppController.explorer.traceProgress < 1
                  ? " " + Math.round(100 * AppController.explorer.traceProgress) + "%" : "…")
            color: Theme.textMuted
            font.pointSize: Theme.smallSize
        },
        ProgressBar {
            objectName: "traceProgress"
            visible: AppController.explorer.tracing
            Layout.preferredWidth: 140
            from: 0
            to: 1
            value: AppController.explorer.traceProgress
            // Past the last row the bar cannot say how long: it moves without a value.
            indeterminate: AppController.explorer.traceProgress >= 1
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
            // A neuron trace needs no transcoders.
            enabled: AppController.hasModel && (AppController.explorer.ready || AppController.explorer.neurons.basis === "neurons")
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
            Layout.maximumHeight: panel.compact ? 40 : 64

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

        BasisBar {
            id: basisBar
            objectName: "basisBar"
            Layout.fillWidth: true
            neurons: AppController.explorer.neurons
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
                objectName: "tokenChipsView"
                Layout.preferredHeight: Math.min(chips.implicitHeight, (panel.compact ? 2 : 4) * 26)
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
