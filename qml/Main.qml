import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import QtQuick.Dialogs
import Circuitscope

// The explorer's window. Today: the prompt, its tokens, the next-token distribution and a
// greedy continuation. The split view's right side is where the inspector will go, the
// centre where the graph canvas will.
ApplicationWindow {
    id: window

    width: 1180
    height: 760
    minimumWidth: 760
    minimumHeight: 480
    visible: true
    title: AppController.hasModel ? AppController.modelName + " — Circuitscope" : "Circuitscope"
    color: Theme.window

    // A light palette whatever the desktop's theme, matching Theme's surfaces.
    palette.window: Theme.window
    palette.windowText: Theme.text
    palette.base: Theme.panel
    palette.alternateBase: Theme.panelHeader
    palette.text: Theme.text
    palette.button: "#f7f8fa"
    palette.buttonText: Theme.text
    palette.highlight: Theme.accent
    palette.highlightedText: "#ffffff"
    palette.placeholderText: Theme.textFaint
    palette.toolTipBase: Theme.text
    palette.toolTipText: "#ffffff"
    palette.mid: Theme.border
    palette.light: "#ffffff"
    palette.midlight: "#f0f2f5"
    palette.dark: "#b8bec9"

    header: ModelHeader {
        onOpenRequested: folderDialog.open()
    }
    footer: StatusBar {}

    FolderDialog {
        id: folderDialog
        objectName: "folderDialog"
        title: "Open a Hugging Face model folder"
        currentFolder: AppController.browseFolder
        onAccepted: AppController.openModel(selectedFolder)
    }

    ColumnLayout {
        anchors.fill: parent
        anchors.margins: Theme.padding
        spacing: Theme.padding

        PromptPanel {
            Layout.fillWidth: true
            Layout.preferredHeight: 200
        }

        StackLayout {
            Layout.fillWidth: true
            Layout.fillHeight: true
            currentIndex: AppController.hasModel ? 1 : 0

            NoModelView {
                onOpenRequested: folderDialog.open()
            }

            SplitView {
                orientation: Qt.Horizontal

                handle: Item {
                    implicitWidth: Theme.padding
                }

                NextTokenPanel {
                    SplitView.preferredWidth: window.width * 0.6
                    SplitView.minimumWidth: 420
                }
                GenerationPanel {
                    SplitView.minimumWidth: 260
                    SplitView.fillWidth: true
                }
            }
        }
    }
}
